/*
 * writer: state and local I/O of a file open for writing. Publishing and
 * streaming are in publish.c. See writer.h.
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
#include "common/log.h"
#include "fs/uploader.h"
#include "fs/writer_internal.h"

#define IO_BLOCK (1u << 20)

uint64_t writer_size(struct writer *w)
{
	return __atomic_load_n(&w->size, __ATOMIC_RELAXED);
}

void writer_set_size(struct writer *w, uint64_t size)
{
	__atomic_store_n(&w->size, size, __ATOMIC_RELAXED);
}

void writer_pending_add(struct writer *w, uint64_t n)
{
	w->pending += n;
	uploader_add_pending(w->env->uploader, n);
}

void writer_pending_sub(struct writer *w, uint64_t n)
{
	if (n > w->pending)
		n = w->pending;
	w->pending -= n;
	if (n)
		uploader_sub_pending(w->env->uploader, n);
}

/* What the spool's journal says of w. */
static struct spool_state writer_state(const struct writer *w)
{
	struct spool_state st = {
		.object = w->object,
		.base_gen = w->base_gen,
		.base_size = w->base_size,
		.staged = w->mode == WRITER_STAGED,
		.session = w->session,
		.session_object = w->session_object,
		.sent = w->sent,
		.closing = w->closing,
		.symlink = w->symlink,
		.conflict = w->conflict,
		.mtime_sec = w->mtime_set ? w->mtime.tv_sec : 0,
		.mtime_nsec = w->mtime_set ? w->mtime.tv_nsec : 0,
	};
	return st;
}

void writer_save(struct writer *w)
{
	struct spool_state st = writer_state(w);
	spool_save(w->env->spool, w->id, &st);
}

static struct writer *writer_alloc(const struct writer_env *env, const char *object)
{
	struct writer *w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->idle, NULL);
	w->env = env;
	w->refs = 1;
	w->fd = -1;
	w->object = xstrdup(object);
	clock_gettime(CLOCK_REALTIME, &w->published);
	return w;
}

static void writer_destroy(struct writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->idle);
	free(w->object);
	free(w->session);
	free(w->session_object);
	free(w);
}

int writer_open(const struct writer_env *env, const char *object, int64_t base_gen,
		uint64_t base_size, int base_components, int truncate, struct writer **out)
{
	struct writer *w = writer_alloc(env, object);
	int rc = spool_create(env->spool, w->id, sizeof(w->id), &w->fd);
	if (rc < 0) {
		log_error("spool %s: cannot create an entry: %s", env->spool->dir, strerror(-rc));
		writer_destroy(w);
		return rc;
	}
	w->mode = WRITER_TAIL;
	w->base_gen = base_gen;
	if (truncate) {
		/* The object is replaced: the tail is the whole file. */
		w->base_size = 0;
		w->dirty = 1;
	} else {
		w->base_size = base_size;
		w->base_components = base_components;
		w->local_from = base_size;
		writer_set_size(w, base_size);
	}
	writer_save(w);
	*out = w;
	return 0;
}

void writer_note_conflict(const char *dir, const char *id, const struct spool_state *st)
{
	/* A tail's bytes begin where the object it was to be appended to ended. */
	uint64_t from = st->staged ? 0 : st->base_size;
	if (from)
		log_error("%s: not uploaded, the object changed in the bucket; what was written here "
			  "from byte %" PRIu64 " on is kept in %s/%s.data (remove it once saved "
			  "elsewhere)", st->object, from, dir, id);
	else
		log_error("%s: not uploaded, the object changed in the bucket; what was written here "
			  "is kept in %s/%s.data (remove it once saved elsewhere)", st->object, dir, id);
}

void writer_ref(struct writer *w)
{
	__atomic_add_fetch(&w->refs, 1, __ATOMIC_RELAXED);
}

void writer_unref(struct writer *w)
{
	if (!w || __atomic_sub_fetch(&w->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	writer_pending_sub(w, w->pending);
	uploader_untrack(w->env->uploader, w, 0);
	if (w->session && (w->unlinked || w->failed || !w->dirty))
		gcs_upload_cancel(w->env->gcs, w->session);
	struct spool_state st = writer_state(w);
	if (w->dirty && !w->unlinked && w->conflict)
		writer_note_conflict(w->env->spool->dir, w->id, &st);
	else if (w->dirty && !w->unlinked && !w->failed)
		log_error("%s: not uploaded; its data stays in the spool (%s/%s.data) and the next "
			  "mount retries it", w->object, w->env->spool->dir, w->id);
	else
		spool_remove(w->env->spool, w->id);
	writer_destroy(w);
}

uint64_t writer_unsent(struct writer *w)
{
	uint64_t size = writer_size(w);
	uint64_t done = w->base_size + w->sent;
	return size > done ? size - done : 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

void writer_drop_session(struct writer *w, int cancel)
{
	if (w->session && cancel)
		gcs_upload_cancel(w->env->gcs, w->session);
	free(w->session);
	free(w->session_object);
	w->session = w->session_object = NULL;
	w->sent = 0;
	w->sent_crc = 0;
}

/* Bring the bytes below local_from into the spool (lock held). */
static int fetch_old_bytes(struct writer *w, struct gcs_error *e)
{
	if (w->local_from == 0)
		return 0;
	char *block = xmalloc(IO_BLOCK);
	int rc = 0;
	for (uint64_t off = 0; off < w->local_from && rc == 0;) {
		size_t want = w->local_from - off < IO_BLOCK ? (size_t)(w->local_from - off) : IO_BLOCK;
		rc = gcs_object_read(w->env->gcs, w->object, w->base_gen, off, block, want, e);
		if (rc == -ENOENT) {
			/* The generation we opened is gone: replaced or deleted meanwhile. */
			gcs_error_set_local(e, -ESTALE, "%s: the object changed in the bucket since it "
					    "was opened here (generation precondition failed); not "
					    "overwriting it", w->object);
			rc = -ESTALE;
		}
		if (rc == 0 && (rc = pwrite_all(w->fd, block, want, (off_t)off)) < 0)
			gcs_error_set_local(e, rc, "staging %s: %s", w->object, strerror(-rc));
		off += want;
	}
	free(block);
	if (rc == 0)
		w->local_from = 0;
	return rc;
}

/* Give up streaming: the whole file will be uploaded at publish (lock held). */
int writer_go_staged(struct writer *w, struct gcs_error *e)
{
	if (w->mode == WRITER_STAGED)
		return 0;
	while (w->busy)
		pthread_cond_wait(&w->idle, &w->lock);
	int rc = fetch_old_bytes(w, e);
	if (rc < 0)
		return rc;
	writer_pending_sub(w, w->pending);
	writer_drop_session(w, 1);
	w->mode = WRITER_STAGED;
	writer_save(w);
	return 0;
}

int writer_write(struct writer *w, const void *buf, size_t len, off_t off)
{
	struct gcs_error e = {0};
	int rc = 0, stream = 0;
	pthread_mutex_lock(&w->lock);
	uint64_t size = writer_size(w);
	if (w->mode == WRITER_TAIL && (uint64_t)off != size) {
		rc = writer_go_staged(w, &e);
		if (rc < 0)
			log_error("write %s: %s", w->object, e.msg);
	} else if (w->mode == WRITER_STAGED && w->session) {
		/* A whole upload that failed half-way: its session holds old bytes. */
		writer_drop_session(w, 1);
	}
	if (rc == 0)
		rc = pwrite_all(w->fd, buf, len, off);
	if (rc == 0) {
		w->dirty = 1;
		w->publish_failed = 0;
		if ((uint64_t)off + len > size)
			writer_set_size(w, (uint64_t)off + len);
		stream = w->mode == WRITER_TAIL;
		if (stream)
			writer_pending_add(w, len);
	} else if (rc != -EIO && rc != -ESTALE) {
		/* A full spool disk is the writer's ENOSPC, not a silent truncation:
		 * the file lacks what the program wrote, so it is never published. */
		log_error("write %s: %zu bytes at %lld: %s; the file will not be uploaded",
			  w->object, len, (long long)off, strerror(-rc));
		w->failed = rc;
		if (ftruncate(w->fd, (off_t)size) < 0)
			log_error("write %s: cannot undo a partial write: %s", w->object,
				  strerror(errno));
	}
	int kick = stream && !w->busy && writer_unsent(w) >= w->env->chunk_size;
	pthread_mutex_unlock(&w->lock);
	if (stream) {
		if (kick)
			uploader_kick(w->env->uploader, w);
		uploader_throttle(w->env->uploader, w);
	}
	return rc;
}

int writer_read(struct writer *w, void *buf, size_t len, off_t off, size_t *got,
		struct writer_below *below, struct gcs_error *e)
{
	*got = 0;
	pthread_mutex_lock(&w->lock);
	uint64_t size = writer_size(w);
	int rc = 0;
	if ((uint64_t)off >= size || len == 0)
		goto out;
	if ((uint64_t)off < w->local_from) {
		/* Bytes the object holds and the spool does not: the caller's. */
		below->generation = w->base_gen;
		below->upto = w->local_from < size ? w->local_from : size;
		rc = 1;
		goto out;
	}
	if (len > size - (uint64_t)off)
		len = (size_t)(size - (uint64_t)off);
	while (*got < len) {
		ssize_t n = pread(w->fd, (char *)buf + *got, len - *got, off + (off_t)*got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			gcs_error_set_local(e, rc, "reading the spool of %s: %s", w->object, strerror(errno));
			break;
		}
		if (n == 0) {
			/* A hole at the end of a sparse spool file reads as zeros. */
			memset((char *)buf + *got, 0, len - *got);
			*got = len;
			break;
		}
		*got += (size_t)n;
	}
out:
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int writer_truncate(struct writer *w, uint64_t size)
{
	struct gcs_error e = {0};
	pthread_mutex_lock(&w->lock);
	int rc = 0;
	if (size != writer_size(w)) {
		rc = writer_go_staged(w, &e);
		if (rc < 0)
			log_error("truncate %s: %s", w->object, e.msg);
		else if (ftruncate(w->fd, (off_t)size) < 0)
			rc = -errno;
		if (rc == 0) {
			writer_set_size(w, size);
			w->dirty = 1;
			w->publish_failed = 0;
			writer_save(w);
		}
	} else if (size == 0 && w->base_gen == 0) {
		w->dirty = 1; /* O_TRUNC of a file being created: it still has to exist */
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int writer_set_mtime(struct writer *w, const struct timespec *t)
{
	pthread_mutex_lock(&w->lock);
	w->mtime = *t;
	w->mtime_set = 1;
	/* Everything published already: the caller records it on the object now. */
	int later = w->dirty && !w->unlinked;
	if (later) {
		w->publish_failed = 0;
		writer_save(w);
	}
	pthread_mutex_unlock(&w->lock);
	return later;
}

void writer_renamed(struct writer *w, const char *object, int64_t gen)
{
	pthread_mutex_lock(&w->lock);
	free(w->object);
	w->object = xstrdup(object);
	w->base_gen = gen;
	writer_save(w);
	pthread_mutex_unlock(&w->lock);
}

void writer_unlink(struct writer *w)
{
	pthread_mutex_lock(&w->lock);
	w->unlinked = 1;
	pthread_mutex_unlock(&w->lock);
}

int writer_has_news(struct writer *w)
{
	pthread_mutex_lock(&w->lock);
	int d = w->dirty && !w->unlinked && !w->failed && !w->publish_failed;
	pthread_mutex_unlock(&w->lock);
	return d;
}

int writer_is_dirty(struct writer *w)
{
	pthread_mutex_lock(&w->lock);
	int d = w->dirty && !w->unlinked;
	pthread_mutex_unlock(&w->lock);
	return d;
}

int writer_wants_retry(struct writer *w)
{
	pthread_mutex_lock(&w->lock);
	int d = w->dirty && !w->unlinked && !w->failed && !w->conflict;
	pthread_mutex_unlock(&w->lock);
	return d;
}
