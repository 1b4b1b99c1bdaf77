/*
 * ops_read: read.
 *
 * A read-only handle reads through a reader pinned to the generation seen
 * at open, following the file when it grows in the bucket by appends and
 * moving to a replacement only while it has served none of the old one. A
 * file being written here reads the staged bytes, and the bytes only the
 * bucket holds yet (an existing file opened for writing) through a reader
 * of the handle's own, with read-ahead.
 */
#include "fs/handle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "common/log.h"
#include "fs/writer.h"

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
	struct reader_pin now = handle_inode_pin(h->inode);
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
	struct inode *i = h->inode;
	fs_attr_doubt(fs, i); /* ask the bucket, not the cache */
	if (fs_refresh_attr(fs, i) < 0)
		return 0;
	pthread_mutex_lock(&fs->inodes.lock);
	struct reader_pin now = handle_inode_pin(i);
	uint64_t told = i->attr_size;
	int ok = i->kind == INODE_FILE && !i->writer && !(h->cached && i->cached_readers > 1);
	pthread_mutex_unlock(&fs->inodes.lock);
	/* Smaller than the kernel was told: not read instead within this read,
	 * whose pages past the new end the kernel could fill with zeros (short
	 * reads arriving out of order); once it has asked for the size again
	 * (see kernel_size_stale), the next read moves on. */
	if (ok && now.size < told) {
		handle_kernel_size_stale(fs, ino);
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
		handle_kernel_size_stale(fs, ino);
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
	int rc = 0, stale = 0;
	while (got < size) {
		size_t n = 0;
		struct writer_below below;
		uint64_t at = (uint64_t)off + got;
		rc = writer_read(w, data + got, size - got, (off_t)at, &n, &below, &e);
		got += n;
		if (rc <= 0)
			break;
		n = below.upto - at < size - got ? (size_t)(below.upto - at) : size - got;
		rc = read_below(fs, h, below.generation, below.upto, data + got, n, at, &e);
		/* ESTALE: a publish here made a new generation meanwhile, with
		 * the same bytes below upto; ask the writer again, once. */
		if (rc == -ESTALE && !stale++) {
			memset(&e, 0, sizeof(e));
			continue;
		}
		if (rc < 0)
			break;
		got += n;
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
			struct reader_pin pin = handle_inode_pin(h->inode);
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
		if (rc == -ESTALE) /* the next open must not pin the old generation */
			fs_attr_doubt(fs, h->inode);
		fuse_reply_err(req, -rc);
		return;
	}
	/* After the reply the file may be closed and h freed: only r, which
	 * waits for this view's pins, is used from here on. */
	reply_view(req, &v);
	reader_view_done(r, &v);
}
