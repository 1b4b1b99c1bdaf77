/*
 * ops_file: create, open, write, flush, release, fsync (read is in
 * ops_read.c).
 *
 * A handle open for writing shares the inode's writer (staged data);
 * flush (every close) and fsync upload it when dirty, and their errors are
 * close's and fsync's errors. A read-only handle opened while the file is
 * not being written here gets a reader pinned to the generation the open
 * saw.
 */
#include "fs/handle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fs/writer.h"

static void handle_drop(struct fs *fs, struct handle *h);

static void handle_drop_open(struct fs *fs, struct fs_open *o)
{
	handle_drop(fs, (struct handle *)o);
}

/* Attach a new handle; a writable one counts on the inode's writer. Table lock held. */
static struct handle *handle_new(struct fs *fs, struct inode *i, int writable)
{
	struct handle *h = xcalloc(1, sizeof(*h));
	fs_open_link(fs, &h->open, handle_drop_open);
	h->inode = i;
	h->writable = writable;
	pthread_mutex_init(&h->below_lock, NULL);
	i->opens++;
	inode_ref(i);
	if (writable)
		i->writer->nopen++;
	return h;
}

/* An upload found another writer's object (412): what this mount knew of
 * the directory was wrong, and the file's attributes come from the bucket. */
static void conflict_seen(struct fs *fs, struct inode *i)
{
	fs_dir_doubt_parent(fs, i);
	fs_attr_doubt(fs, i);
}

/* The last write handle is going: publish what changed since its close.
 * Returns whether bytes are left that a later try could publish. */
static int publish_at_release(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->inodes.lock);
	struct writer *w = h->writable && h->inode->writer->nopen == 1 ? h->inode->writer : NULL;
	if (w)
		writer_ref(w);
	pthread_mutex_unlock(&fs->inodes.lock);
	if (!w)
		return 0;
	/* close() returned at flush; a utime (cp -p, tar) may have come in
	 * before this release. */
	if (writer_has_news(w)) {
		struct gcs_object obj = {0};
		struct gcs_error e = {0};
		int rc = writer_publish(w, &obj, &e);
		if (rc < 0) {
			fs_gcs_fail("release", &e);
			if (rc == -ESTALE)
				conflict_seen(fs, h->inode);
		} else if (obj.name) {
			pthread_mutex_lock(&fs->inodes.lock);
			fs_apply_object(fs, h->inode, &obj);
			pthread_mutex_unlock(&fs->inodes.lock);
		}
		gcs_object_clear(&obj);
	}
	int left = writer_wants_retry(w);
	writer_unref(w);
	return left;
}

static void handle_drop(struct fs *fs, struct handle *h)
{
	struct writer *dead = NULL;
	int left = publish_at_release(fs, h);
	pthread_mutex_lock(&fs->inodes.lock);
	struct inode *i = h->inode;
	fs_open_unlink(&h->open);
	if (h->cached)
		i->cached_readers--;
	i->opens--;
	/* A file whose close failed stays as written, and is tried again. */
	if (h->writable && --i->writer->nopen == 0 && !publisher_hold(&fs->publisher, i, left))
		dead = publisher_take_writer(&fs->publisher, i);
	inode_unref(&fs->inodes, i);
	pthread_mutex_unlock(&fs->inodes.lock);
	writer_unref(dead);
	reader_free(h->reader);
	reader_free(h->below);
	pthread_mutex_destroy(&h->below_lock);
	free(h);
}

static void reply_open(fuse_req_t req, struct fs *fs, struct handle *h,
		       struct fuse_file_info *fi, const struct fuse_entry_param *e)
{
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 0;
	fi->direct_io = h->direct;
	int rc = e ? fuse_reply_create(req, e, fi) : fuse_reply_open(req, fi);
	if (rc == -ENOENT) /* interrupted: no release will come */
		handle_drop(fs, h);
}

void fs_op_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		  struct fuse_file_info *fi)
{
	(void)mode;
	struct fs *fs = fs_of(req);
	struct inode *parent = fs_inode(fs, parent_ino);
	struct buf obj_name = BUF_INIT;
	int rc = parent ? fs_child_name(fs, parent, name, 0, &obj_name) : -ENOENT;
	struct writer *w = NULL;
	if (rc == 0) /* generation 0: the object must not exist when it is published */
		rc = writer_open(&fs->wenv, obj_name.data, 0, 0, 0, 1, &w);
	buf_free(&obj_name);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	pthread_mutex_lock(&fs->inodes.lock);
	inode_dir_changed(parent);
	struct inode *i = inode_child(&fs->inodes, parent, name);
	if (i && (i->writer || i->kind != INODE_FILE))
		inode_unhash(&fs->inodes, i); /* held open here, or not a file: start afresh */
	i = inode_child_get(&fs->inodes, parent, name, INODE_FILE);
	i->writer = w;
	i->size = 0;
	i->generation = 0;
	i->components = 0;
	i->has_crc32c = 0;
	clock_gettime(CLOCK_REALTIME, &i->mtime);
	struct handle *h = handle_new(fs, i, 1);
	fs_fill_entry(fs, i, &e);
	pthread_mutex_unlock(&fs->inodes.lock);
	reply_open(req, fs, h, fi, &e);
}

void handle_kernel_size_stale(struct fs *fs, fuse_ino_t ino)
{
	if (fs->se)
		(void)fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == FS_STATUS_INO) {
		fs_status_open(req, fi);
		return;
	}
	struct fs *fs = fs_of(req);
	struct inode *i = fs_inode(fs, ino);
	if (!i) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	int writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	int trunc = writable && (fi->flags & O_TRUNC);
	struct buf name = BUF_INIT;
	/* Open pins a generation: make sure it is one the bucket still has. */
	int rc = fs_refresh_attr(fs, i);
	if (rc == 0)
		rc = fs_object_name(fs, i, 0, &name);
	if (rc < 0) {
		buf_free(&name);
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->inodes.lock);
	if (i->kind == INODE_DIR) {
		pthread_mutex_unlock(&fs->inodes.lock);
		buf_free(&name);
		fuse_reply_err(req, EISDIR);
		return;
	}
	struct handle *h = NULL;
	int size_stale = 0;
	if (!writable) {
		h = handle_new(fs, i, 0);
		if (!i->writer) {
			struct reader_pin pin = handle_inode_pin(i);
			size_stale = pin.size != i->attr_size;
			h->reader = reader_new(fs->prefetcher, fs->gcs, name.data, &pin,
					       fs->opts->read_ahead);
			/* The kernel keeps one copy of a file's pages for all its
			 * handles. While handles pinned to an older generation are
			 * open, their bytes are what it holds: a handle of a newer
			 * one reads around it (direct I/O), so neither sees a mix. */
			if (i->cached_readers > 0 && i->cached_gen != i->generation) {
				h->direct = 1;
			} else {
				h->cached = 1;
				i->cached_readers++;
				i->cached_gen = i->generation;
			}
		}
		/* else: reads see the writer's bytes, then a reader once it is gone */
	} else {
		if (!i->writer) {
			/* No download here: appends become a tail composed onto the
			 * object, and anything else fetches the old bytes when needed. */
			rc = writer_open(&fs->wenv, name.data, i->generation, i->size, i->components,
					 trunc, &i->writer);
			trunc = 0;
		}
		if (rc == 0)
			h = handle_new(fs, i, 1);
	}
	struct writer *w = h && h->writable ? i->writer : NULL;
	pthread_mutex_unlock(&fs->inodes.lock);
	buf_free(&name);
	if (size_stale)
		handle_kernel_size_stale(fs, ino); /* its reads must not stop short or run on */
	if (rc == 0 && trunc)
		rc = writer_truncate(w, 0);
	if (rc < 0) {
		if (h)
			handle_drop(fs, h);
		fuse_reply_err(req, -rc);
		return;
	}
	reply_open(req, fs, h, fi, NULL);
}

void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	(void)ino;
	struct fs *fs = fs_of(req);
	struct handle *h = handle_of(fi);
	if (!h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	/* Up to the largest object GCS holds, then EFBIG (as a file size limit). */
	if (off < 0 || (uint64_t)off >= GCS_MAX_OBJECT_SIZE) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	if (size > GCS_MAX_OBJECT_SIZE - (uint64_t)off)
		size = (size_t)(GCS_MAX_OBJECT_SIZE - (uint64_t)off);
	int rc = writer_write(h->inode->writer, buf, size, off);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fuse_reply_write(req, size);
	(void)fs;
}

static int upload(struct fs *fs, struct handle *h)
{
	struct gcs_error e = {0};
	struct gcs_object obj = {0};
	int rc = writer_publish(h->inode->writer, &obj, &e);
	if (rc < 0)
		rc = fs_gcs_fail("close", &e);
	if (rc == -ESTALE)
		conflict_seen(fs, h->inode);
	if (rc == 0 && obj.name) {
		pthread_mutex_lock(&fs->inodes.lock);
		fs_apply_object(fs, h->inode, &obj);
		pthread_mutex_unlock(&fs->inodes.lock);
	}
	gcs_object_clear(&obj);
	/* close(2) reports EIO for any failed upload but a conflict or ENOSPC. */
	if (rc < 0 && rc != -ESTALE && rc != -ENOSPC && rc != -EACCES && rc != -ENAMETOOLONG)
		rc = -EIO;
	return rc;
}

void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = ino == FS_STATUS_INO ? NULL : handle_of(fi);
	int rc = h && h->writable ? upload(fs_of(req), h) : 0;
	fuse_reply_err(req, -rc);
}

void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	struct handle *h = ino == FS_STATUS_INO ? NULL : handle_of(fi);
	int rc = h && h->writable ? upload(fs_of(req), h) : 0;
	fuse_reply_err(req, -rc);
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == FS_STATUS_INO) {
		fs_status_release(req, fi);
		return;
	}
	handle_drop(fs_of(req), handle_of(fi));
	fuse_reply_err(req, 0);
}
