/*
 * writer: staged file data and its upload. See writer.h.
 */
#include "fs/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/log.h"

/* Objects up to this size go up in one multipart request. */
#define SINGLE_REQUEST_MAX (4u << 20)
#define IO_BLOCK (1u << 20)

static int spool_file(const char *spool)
{
	int fd = open(spool, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	char path[4096];
	snprintf(path, sizeof(path), "%s/stage.XXXXXX", spool);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

int writer_new(const char *spool, int64_t base_generation, int dirty, struct writer **out)
{
	int fd = spool_file(spool);
	if (fd < 0) {
		log_error("spool %s: cannot create a staging file: %s", spool, strerror(-fd));
		return fd;
	}
	struct writer *w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	w->fd = fd;
	w->base_generation = base_generation;
	w->dirty = dirty;
	*out = w;
	return 0;
}

void writer_free(struct writer *w)
{
	if (!w)
		return;
	close(w->fd);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

uint64_t writer_size(struct writer *w)
{
	return __atomic_load_n(&w->size, __ATOMIC_RELAXED);
}

static void set_size(struct writer *w, uint64_t size)
{
	__atomic_store_n(&w->size, size, __ATOMIC_RELAXED);
}

int writer_load(struct writer *w, struct gcs_client *gcs, const char *object,
		int64_t generation, uint64_t size, struct gcs_error *e)
{
	char *block = xmalloc(IO_BLOCK);
	int rc = 0;
	uint64_t off = 0;
	while (off < size) {
		size_t want = size - off < IO_BLOCK ? (size_t)(size - off) : IO_BLOCK;
		size_t got = 0;
		rc = gcs_object_read(gcs, object, generation, off, block, want, &got, e);
		if (rc < 0)
			break;
		if (got == 0)
			break; /* the object is shorter than its stat said */
		ssize_t n = pwrite(w->fd, block, got, (off_t)off);
		if (n != (ssize_t)got) {
			rc = n < 0 ? -errno : -ENOSPC;
			snprintf(e->msg, sizeof(e->msg), "staging %s: %s", object, strerror(-rc));
			e->err = rc;
			break;
		}
		off += got;
	}
	free(block);
	if (rc == 0)
		set_size(w, off);
	return rc;
}

int writer_write(struct writer *w, const void *buf, size_t len, off_t off)
{
	pthread_mutex_lock(&w->lock);
	size_t done = 0;
	int rc = 0;
	while (done < len) {
		ssize_t n = pwrite(w->fd, (const char *)buf + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		done += (size_t)n;
	}
	if (rc == 0) {
		w->dirty = 1;
		if ((uint64_t)off + len > w->size)
			set_size(w, (uint64_t)off + len);
	} else {
		/* A full spool disk is the writer's ENOSPC, not a silent truncation. */
		log_error("staging write of %zu bytes at %lld: %s", len, (long long)off,
			  strerror(-rc));
		if (done && (uint64_t)off + done > w->size) {
			/* Drop the partial write so the file never holds what write() refused. */
			if (ftruncate(w->fd, (off_t)w->size) < 0)
				log_error("staging: cannot undo a partial write: %s", strerror(errno));
		}
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int writer_read(struct writer *w, void *buf, size_t len, off_t off, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = pread(w->fd, (char *)buf + *got, len - *got, off + (off_t)*got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

int writer_truncate(struct writer *w, uint64_t size)
{
	pthread_mutex_lock(&w->lock);
	int rc = ftruncate(w->fd, (off_t)size) < 0 ? -errno : 0;
	if (rc == 0) {
		set_size(w, size);
		w->dirty = 1;
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void writer_set_mtime(struct writer *w, const struct timespec *t)
{
	pthread_mutex_lock(&w->lock);
	w->mtime = *t;
	w->mtime_set = 1;
	w->dirty = 1;
	pthread_mutex_unlock(&w->lock);
}

static int staged_crc(int fd, uint64_t size, uint32_t *crc)
{
	char *block = xmalloc(IO_BLOCK);
	uint32_t c = 0;
	int rc = 0;
	for (uint64_t off = 0; off < size;) {
		size_t want = size - off < IO_BLOCK ? (size_t)(size - off) : IO_BLOCK;
		ssize_t n = pread(fd, block, want, (off_t)off);
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		c = crc32c_update(c, block, (size_t)n);
		off += (uint64_t)n;
	}
	free(block);
	*crc = c;
	return rc;
}

static int upload_small(struct writer *w, struct gcs_client *gcs, const char *object,
			const struct gcs_write_opts *opts, struct gcs_object *out,
			struct gcs_error *e)
{
	char *data = xmalloc(w->size ? w->size : 1);
	size_t got = 0;
	int rc = writer_read(w, data, w->size, 0, &got);
	if (rc == 0 && got != w->size)
		rc = -EIO;
	if (rc < 0)
		snprintf(e->msg, sizeof(e->msg), "upload %s: reading the staged file: %s", object,
			 strerror(-rc));
	else
		rc = gcs_object_insert(gcs, object, data, got, opts, out, e);
	free(data);
	return rc;
}

static int upload_resumable(struct writer *w, struct gcs_client *gcs, const char *object,
			    const struct gcs_write_opts *opts, uint64_t chunk,
			    struct gcs_object *out, struct gcs_error *e)
{
	uint32_t crc;
	int rc = staged_crc(w->fd, w->size, &crc);
	if (rc < 0) {
		snprintf(e->msg, sizeof(e->msg), "upload %s: reading the staged file: %s", object,
			 strerror(-rc));
		return rc;
	}
	char *session = NULL;
	rc = gcs_upload_start(gcs, object, opts, &session, e);
	if (rc < 0)
		return rc;
	uint64_t off = 0;
	int done = 0;
	while (rc == 0 && !done) {
		uint64_t len = w->size - off < chunk ? w->size - off : chunk;
		int last = off + len == w->size;
		uint64_t persisted = 0;
		rc = gcs_upload_chunk(gcs, session, off, NULL, w->fd, (off_t)off, (size_t)len,
				      last ? (int64_t)w->size : -1, crc, &persisted, &done, out, e);
		if (rc == 0 && !done) {
			if (last) {
				snprintf(e->msg, sizeof(e->msg),
					 "upload %s: the server did not complete the object", object);
				rc = -EIO;
			}
			off = persisted;
		}
	}
	if (rc < 0)
		gcs_upload_cancel(gcs, session);
	free(session);
	return rc;
}

int writer_flush(struct writer *w, struct gcs_client *gcs, const char *object,
		 uint64_t chunk_size, struct gcs_object *out, struct gcs_error *e)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&w->lock);
	if (!w->dirty || w->unlinked) {
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	struct timespec mtime = w->mtime;
	if (!w->mtime_set)
		clock_gettime(CLOCK_REALTIME, &mtime);
	struct gcs_write_opts opts = {
		.content_type = NULL,
		.if_generation_match = w->base_generation,
		.mtime = &mtime,
		.symlink = w->symlink,
	};
	int rc;
	if (w->size <= SINGLE_REQUEST_MAX)
		rc = upload_small(w, gcs, object, &opts, out, e);
	else
		rc = upload_resumable(w, gcs, object, &opts, chunk_size, out, e);
	if (rc == 0) {
		w->dirty = 0;
		w->base_generation = out->generation;
		if (out->size != w->size) {
			snprintf(e->msg, sizeof(e->msg), "upload %s: server holds %" PRIu64
				 " bytes, %" PRIu64 " were written", object, out->size, w->size);
			e->err = rc = -EIO;
		}
	} else if (rc == -ESTALE) {
		snprintf(e->msg, sizeof(e->msg),
			 "upload %s: the object changed in the bucket since it was opened here "
			 "(generation precondition failed); not overwriting it", object);
		e->err = rc;
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}
