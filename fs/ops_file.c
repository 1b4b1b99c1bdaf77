/*
 * ops_file: create, open, read, write, flush, release, fsync.
 *
 * A handle open for writing shares the inode's writer (staged data);
 * flush (every close) and fsync upload it when dirty, and their errors are
 * close's and fsync's errors. A read-only handle reads through a reader
 * pinned to the generation seen at open, unless the file is being written
 * here, in which case it reads the staged bytes, and the bytes only the
 * bucket holds yet (an existing file opened for writing) through a reader of
 * its own, with read-ahead.
 */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "common/log.h"
#include "fs/reader.h"
#include "fs/writer.h"

struct handle {
	struct fs_open open;      /* first: on the mount's list of open handles */
	struct inode *inode;      /* holds a reference */
	struct reader *reader;    /* read-only handles */
	pthread_mutex_t below_lock; /* guards below, and is held while reading through it */
	struct reader *below;     /* while the file is written here: its bytes only the bucket
				   * holds yet, read ahead as a reader's are */
	int writable;
	int cached;               /* a reader through the kernel's page cache (see fs_op_open) */
	int direct;               /* a reader bypassing it */
};

static void handle_drop(struct fs *fs, struct handle *h);

static void handle_drop_open(struct fs *fs, struct fs_open *o)
{
	handle_drop(fs, (struct handle *)o);
}

static struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

/* What a reader of i's object pins now (table lock held). */
static struct reader_pin inode_pin(const struct inode *i)
{
	struct reader_pin pin = {.generation = i->generation, .size = i->size,
				 .crc32c = i->crc32c, .has_crc32c = i->has_crc32c};
	return pin;
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
	pthread_mutex_lock(&fs->inodes.lock);
	i->attr_expires = 0;
	pthread_mutex_unlock(&fs->inodes.lock);
}

/* The last write handle is going: publish what changed since its close. */
static void publish_at_release(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->inodes.lock);
	struct writer *w = h->writable && h->inode->writer->nopen == 1 ? h->inode->writer : NULL;
	if (w)
		writer_ref(w);
	pthread_mutex_unlock(&fs->inodes.lock);
	if (!w)
		return;
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
	writer_unref(w);
}

static void handle_drop(struct fs *fs, struct handle *h)
{
	struct writer *dead = NULL;
	publish_at_release(fs, h);
	pthread_mutex_lock(&fs->inodes.lock);
	struct inode *i = h->inode;
	fs_open_unlink(&h->open);
	if (h->cached)
		i->cached_readers--;
	i->opens--;
	if (h->writable && --i->writer->nopen == 0) {
		dead = i->writer;
		i->writer = NULL;
		/* Attributes come from the bucket again. */
		i->attr_expires = 0;
	}
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

/*
 * The size the kernel holds for ino is no longer the file's: it asks again
 * before its next read (each read checks attributes that were invalidated)
 * or stat. Attributes only, no page is touched, so a read under way is safe.
 */
static void kernel_size_stale(struct fs *fs, fuse_ino_t ino)
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
			struct reader_pin pin = inode_pin(i);
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
		kernel_size_stale(fs, ino); /* its reads must not stop short or run on */
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

/*
 * A read reaching past the end of what h pins: the file may have grown in
 * the bucket since it was opened (a log or an event file appended to by
 * another mount), as the attributes say once stat_ttl has passed. If the
 * new generation extends the pinned one, h reads on into it; if the
 * object was replaced instead, h keeps the old bytes (and its end): 1.
 */
static int follow_growth(struct fs *fs, struct handle *h)
{
	if (fs_refresh_attr(fs, h->inode) < 0)
		return 0; /* gone or unreachable: the pinned bytes are still there to read */
	pthread_mutex_lock(&fs->inodes.lock);
	struct reader_pin now = inode_pin(h->inode);
	pthread_mutex_unlock(&fs->inodes.lock);
	int64_t was = reader_pin_of(h->reader).generation;
	struct gcs_error e = {0};
	int rc = reader_follow(h->reader, &now, &e);
	if (rc < 0) {
		fs_gcs_fail("read", &e);
	} else if (rc == 2) {
		log_info("read %s: generation %lld is not shown to be an append to generation "
			 "%lld, which this open file keeps reading", h->reader->object,
			 (long long)now.generation, (long long)was);
	} else if (rc == 1 && h->cached) {
		/* The kernel's copy of the pages holds the old generation's bytes,
		 * which begin the new one: a new open may share it. */
		pthread_mutex_lock(&fs->inodes.lock);
		if (h->inode->cached_gen == was)
			h->inode->cached_gen = now.generation;
		pthread_mutex_unlock(&fs->inodes.lock);
	}
	return rc == 2 || rc == 3;
}

/*
 * The generation h pinned at open is gone and h has served none of it: the
 * file was replaced since the attributes its open used were cached (within
 * stat_ttl). h reads the live generation instead, once the bucket names
 * it, unless it is smaller or other handles share the kernel's pages of
 * the old one. 1 when h reads another generation than `was`, the one the
 * failed read asked for.
 */
static int repin(struct fs *fs, fuse_ino_t ino, struct handle *h, int64_t was)
{
	pthread_mutex_lock(&fs->inodes.lock);
	struct inode *i = h->inode;
	i->attr_expires = 0; /* ask the bucket, not the cache */
	pthread_mutex_unlock(&fs->inodes.lock);
	if (fs_refresh_attr(fs, i) < 0)
		return 0;
	pthread_mutex_lock(&fs->inodes.lock);
	struct reader_pin now = inode_pin(i);
	uint64_t told = i->attr_size;
	int ok = i->kind == INODE_FILE && !i->writer && !(h->cached && i->cached_readers > 1);
	pthread_mutex_unlock(&fs->inodes.lock);
	/* Smaller than the kernel was told: not read instead within this read,
	 * whose pages past the new end the kernel could fill with zeros (short
	 * reads arriving out of order); once it has asked for the size again
	 * (see kernel_size_stale), the next read moves on. */
	if (ok && now.size < told) {
		kernel_size_stale(fs, ino);
		return 0;
	}
	/* Not under the table's lock: reader_repin waits for a check of growth. */
	if (ok)
		ok = reader_repin(h->reader, &now);
	if (ok != 1)
		return ok == 2 && now.generation != was; /* moved on by another read */
	if (h->cached) {
		pthread_mutex_lock(&fs->inodes.lock);
		if (i->cached_gen == was)
			i->cached_gen = now.generation;
		pthread_mutex_unlock(&fs->inodes.lock);
	}
	log_info("read %s: generation %lld was replaced before this open file read any of it; "
		 "it reads generation %lld", h->reader->object, (long long)was,
		 (long long)now.generation);
	/* The kernel reads no further than the size it was told until it asks again. */
	if (now.size > told)
		kernel_size_stale(fs, ino);
	return 1;
}

/* Reply with the view's bytes in place, its spans gathered by writev. */
static void reply_view(fuse_req_t req, const struct reader_view *v)
{
	struct iovec iov[READER_SPANS];
	for (int k = 0; k < v->n; k++) {
		iov[k].iov_base = (void *)v->span[k].p;
		iov[k].iov_len = v->span[k].len;
	}
	fuse_reply_iov(req, iov, v->n);
}

/*
 * len bytes at off of generation gen, which holds them below upto, through
 * the handle's reader of that part (made, or made again for a new
 * generation, here): sequential reads get its read-ahead, not a request
 * each. 0, or a negative errno with e filled.
 */
static int read_below(struct fs *fs, struct handle *h, int64_t gen, uint64_t upto, char *dst,
		      size_t len, uint64_t off, struct gcs_error *e)
{
	pthread_mutex_lock(&h->below_lock);
	if (h->below) {
		struct reader_pin pin = reader_pin_of(h->below);
		if (pin.generation != gen || pin.size != upto) {
			reader_free(h->below); /* no view of it is out: the lock is ours */
			h->below = NULL;
		}
	}
	int rc = 0;
	if (!h->below) {
		struct buf name = BUF_INIT;
		rc = fs_object_name(fs, h->inode, 0, &name);
		if (rc == 0) {
			struct reader_pin pin = {.generation = gen, .size = upto};
			h->below = reader_new(fs->prefetcher, fs->gcs, name.data, &pin,
					      fs->opts->read_ahead);
		} else {
			e->err = rc;
			snprintf(e->msg, sizeof(e->msg), "read: the file has no object name");
		}
		buf_free(&name);
	}
	if (rc == 0) {
		struct reader_view v;
		rc = reader_view(h->below, len, off, &v, e);
		size_t got = 0;
		for (int k = 0; rc == 0 && k < v.n; k++) {
			memcpy(dst + got, v.span[k].p, v.span[k].len);
			got += v.span[k].len;
		}
		reader_view_done(h->below, &v);
		if (rc == 0 && got != len) {
			rc = e->err = -EIO; /* within the pinned size: never short */
			snprintf(e->msg, sizeof(e->msg), "read: %zu of %zu bytes", got, len);
		}
	}
	pthread_mutex_unlock(&h->below_lock);
	return rc;
}

/*
 * A read of a file being written here: the bytes only the bucket holds (an
 * existing file opened for writing, below what was written) through the
 * handle's reader, the rest from the spool.
 */
static void read_written(fuse_req_t req, struct fs *fs, struct handle *h, struct writer *w,
			 size_t size, off_t off)
{
	char *data = xmalloc(size ? size : 1);
	size_t got = 0;
	struct gcs_error e = {0};
	int rc = 0;
	for (int tries = 0; tries < 2; tries++) {
		int64_t gen;
		uint64_t upto;
		if (!writer_bucket_part(w, (uint64_t)off, &gen, &upto))
			break;
		size_t n = upto - (uint64_t)off < size ? (size_t)(upto - (uint64_t)off) : size;
		memset(&e, 0, sizeof(e));
		rc = read_below(fs, h, gen, upto, data, n, (uint64_t)off, &e);
		if (rc == 0)
			got = n;
		/* ESTALE: a publish here made a new generation meanwhile, with
		 * the same bytes below upto; read those. */
		if (rc != -ESTALE)
			break;
	}
	if (rc == 0 && got < size) {
		size_t more = 0;
		rc = writer_read(w, data + got, size - got, off + (off_t)got, &more, &e);
		got += more;
	}
	if (rc < 0)
		fuse_reply_err(req, -fs_gcs_fail("read", &e));
	else
		fuse_reply_buf(req, data, got);
	free(data);
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	if (ino == FS_STATUS_INO) {
		fs_status_read(req, size, off, fi);
		return;
	}
	struct fs *fs = fs_of(req);
	struct handle *h = handle_of(fi);
	pthread_mutex_lock(&fs->inodes.lock);
	struct writer *w = h->inode->writer;
	if (w)
		writer_ref(w); /* alive while reading, whoever closes meanwhile */
	pthread_mutex_unlock(&fs->inodes.lock);
	if (w) {
		read_written(req, fs, h, w, size, off);
		writer_unref(w);
		return;
	}
	if (!h->reader) {
		/* Opened while being written here; that writer is done. Its last
		 * version is what the bucket holds now: pin that one. */
		struct buf name = BUF_INIT;
		int rc = fs_refresh_attr(fs, h->inode);
		if (rc == 0)
			rc = fs_object_name(fs, h->inode, 0, &name);
		pthread_mutex_lock(&fs->inodes.lock);
		if (rc == 0 && !h->reader) {
			struct reader_pin pin = inode_pin(h->inode);
			h->reader = reader_new(fs->prefetcher, fs->gcs, name.data, &pin,
					       fs->opts->read_ahead);
		}
		pthread_mutex_unlock(&fs->inodes.lock);
		buf_free(&name);
		if (!h->reader) {
			fuse_reply_err(req, rc < 0 ? -rc : EBADF);
			return;
		}
	}
	struct gcs_error e = {0};
	struct reader_view v;
	struct reader *r = h->reader;
	if ((uint64_t)off + size > reader_pin_of(r).size && follow_growth(fs, h) && h->cached) {
		/* Replaced, and the kernel may hold the new size: a read here
		 * cut short at the old end would have the rest of its pages
		 * filled with zeros, which the kernel keeps while it holds that
		 * size. The old bytes end here with an error instead. */
		pthread_mutex_lock(&fs->inodes.lock);
		uint64_t told = h->inode->attr_size;
		pthread_mutex_unlock(&fs->inodes.lock);
		struct reader_pin pin = reader_pin_of(r);
		if (told > pin.size) {
			fuse_reply_err(req, ESTALE);
			return;
		}
	}
	int64_t asked = reader_pin_of(r).generation;
	int rc = reader_view(r, size, (uint64_t)off, &v, &e);
	if (rc == -ESTALE && repin(fs, ino, h, asked)) {
		memset(&e, 0, sizeof(e));
		rc = reader_view(r, size, (uint64_t)off, &v, &e);
	}
	if (rc < 0) {
		rc = fs_gcs_fail("read", &e);
		if (rc == -ESTALE) {
			/* The object changed: the next open must not pin the old one. */
			pthread_mutex_lock(&fs->inodes.lock);
			h->inode->attr_expires = 0;
			pthread_mutex_unlock(&fs->inodes.lock);
		}
		fuse_reply_err(req, -rc);
		return;
	}
	/* After the reply the file may be closed and h freed: only r, which
	 * waits for this view's pins, is used from here on. */
	reply_view(req, &v);
	reader_view_done(r, &v);
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
