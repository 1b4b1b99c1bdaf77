/*
 * publish: how a writer's bytes reach the object: streaming the tail's
 * chunks while the program writes (writer_stream, on an uploader thread),
 * publishing at close and fsync (writer_publish), and finishing what a
 * killed mount left in the spool (writer_recover). See writer.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "fs/observe.h"
#include "fs/uploader.h"
#include "fs/writer_internal.h"

/* Spool bytes are read this much at a time for their CRC. */
#define CRC_BLOCK (1u << 20)
/* Tails up to this size go up in one multipart request. */
#define SINGLE_REQUEST_MAX (4u << 20)
/* GCS caps a composite at 1,024 components; past this, upload whole. */
#define COMPONENT_CAP 1000
/* Staged (randomly written) files up to this size are published whole at
 * the publish interval; larger ones wait for close or fsync. */
#define STAGED_PUBLISH_MAX (64u << 20)

void gcs_error_set_local(struct gcs_error *e, int err, const char *fmt, ...)
{
	e->http = 0;
	e->err = err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

static int read_spool(struct writer *w, void *buf, size_t len, uint64_t off, struct gcs_error *e)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(w->fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int rc = n < 0 ? -errno : -EIO;
			gcs_error_set_local(e, rc, "reading the spool of %s: %s", w->object,
					    n < 0 ? strerror(errno) : "file shorter than written");
			return rc;
		}
		got += (size_t)n;
	}
	return 0;
}

static void tmp_name(struct writer *w, struct buf *out)
{
	unsigned char r[12];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)(rand() & 0xff);
	buf_reset(out);
	buf_puts(out, w->env->tmp_prefix);
	for (size_t i = 0; i < sizeof(r); i++)
		buf_printf(out, "%02x", r[i]);
}

/* Where the tail goes: the object itself, or a temporary to compose. */
static void tail_target(struct writer *w, struct buf *target, int64_t *ifgen)
{
	if (w->base_size == 0) {
		buf_reset(target);
		buf_puts(target, w->object);
		*ifgen = w->base_gen;
	} else {
		tmp_name(w, target);
		*ifgen = 0;
	}
}

/*
 * Send tail bytes [from, from+len) of the session. final: this ends the
 * tail (whose length is total). crc is the CRC of the tail before `from`
 * and becomes the CRC of what the server confirmed. Lock may or may not be
 * held: only the spool and the session are touched.
 */
static int send_piece(struct writer *w, const char *session, uint64_t base, uint64_t from,
		      size_t len, int final, uint64_t total, uint32_t *crc, uint64_t *persisted,
		      int *done, struct gcs_object *out, struct gcs_error *e)
{
	/* CRC first, a block at a time from the page cache; the body then goes
	 * from the spool file to the socket without a chunk-sized buffer. */
	char *block = xmalloc(CRC_BLOCK);
	uint32_t after = *crc;
	int rc = 0;
	for (size_t at = 0; at < len && rc == 0; at += CRC_BLOCK) {
		size_t n = len - at < CRC_BLOCK ? len - at : CRC_BLOCK;
		rc = read_spool(w, block, n, base + from + at, e);
		after = crc32c_update(after, block, n);
	}
	if (rc == 0)
		rc = gcs_upload_chunk(w->env->gcs, session, from, NULL, w->fd,
				      (off_t)(base + from), len, final ? (int64_t)total : -1, after,
				      persisted, done, out, e);
	if (rc == 0) {
		if (*done || *persisted >= from + len) {
			*crc = after;
		} else if (*persisted > from) {
			/* The server kept less than was sent: the CRC of what it kept. */
			uint32_t part = *crc;
			for (uint64_t at = from; at < *persisted && rc == 0; at += CRC_BLOCK) {
				size_t n = *persisted - at < CRC_BLOCK ? (size_t)(*persisted - at) : CRC_BLOCK;
				rc = read_spool(w, block, n, base + at, e);
				part = crc32c_update(part, block, n);
			}
			*crc = part;
		}
		uploader_confirmed(w->env->uploader, w,
				   base + (*done ? from + len : *persisted));
	}
	free(block);
	return rc;
}

void writer_stream(struct writer *w)
{
	pthread_mutex_lock(&w->lock);
	for (;;) {
		uint64_t unsent = writer_unsent(w);
		uint64_t chunk = w->env->chunk_size;
		if (w->pressure && unsent < chunk)
			chunk = unsent / GCS_CHUNK_ALIGN * GCS_CHUNK_ALIGN;
		if (w->mode != WRITER_TAIL || w->closing || w->unlinked || w->busy || chunk == 0 ||
		    unsent < chunk)
			break;
		w->busy = 1;
		uploader_track(w->env->uploader, w, w->base_size, w->base_size + w->sent);
		struct gcs_error e = {0};
		int rc = 0;
		if (!w->session) {
			struct buf target = BUF_INIT;
			int64_t ifgen;
			tail_target(w, &target, &ifgen);
			struct gcs_write_opts opts = {.if_generation_match = ifgen};
			char *session = NULL;
			pthread_mutex_unlock(&w->lock);
			rc = gcs_upload_start(w->env->gcs, target.data, &opts, &session, &e);
			pthread_mutex_lock(&w->lock);
			if (rc == 0) {
				w->session = session;
				w->session_object = buf_detach(&target);
				writer_save(w);
			}
			buf_free(&target);
		}
		if (rc == 0) {
			char *session = xstrdup(w->session);
			uint64_t base = w->base_size, from = w->sent;
			uint32_t crc = w->sent_crc;
			uint64_t persisted = from;
			int done = 0;
			pthread_mutex_unlock(&w->lock);
			rc = send_piece(w, session, base, from, (size_t)chunk, 0, 0, &crc, &persisted,
					&done, NULL, &e);
			free(session);
			pthread_mutex_lock(&w->lock);
			if (rc == 0 && persisted > from) {
				w->sent = persisted;
				w->sent_crc = crc;
				writer_save(w);
				writer_pending_sub(w, persisted - from);
				spool_settle(w->fd, base + persisted);
			}
		}
		w->busy = 0;
		pthread_cond_broadcast(&w->idle);
		uploader_pause(w->env->uploader, w);
		if (rc < 0) {
			/* Streaming failed past its retries: keep the bytes, upload at close. */
			uploader_untrack(w->env->uploader, w, 0);
			log_error("upload %s: %s; the file will be uploaded whole when closed",
				  w->object, e.msg);
			struct gcs_error e2 = {0};
			if (writer_go_staged(w, &e2) < 0)
				log_error("upload %s: %s", w->object, e2.msg);
			break;
		}
	}
	w->pressure = 0;
	pthread_mutex_unlock(&w->lock);
}

/*
 * A tail upload taken out of the writer, so that it can go on without the
 * writer's lock while the program keeps writing past `end`. w->busy keeps
 * the uploader and other publishers away meanwhile.
 */
struct tail {
	char *session;
	char *target;          /* the object the session writes */
	uint64_t base;         /* file offset where the tail starts */
	uint64_t end;          /* file offset where this upload ends it */
	uint64_t sent;
	uint32_t crc;
};

static void tail_take(struct writer *w, struct tail *t, uint64_t end)
{
	t->session = w->session;
	t->target = w->session_object;
	w->session = w->session_object = NULL;
	t->base = w->base_size;
	t->end = end;
	t->sent = w->sent;
	t->crc = w->sent_crc;
}

static void tail_clear(struct tail *t)
{
	free(t->session);
	free(t->target);
	memset(t, 0, sizeof(*t));
}

/*
 * Finish the tail as object t->target (named here when there is no session
 * yet). Needs no lock: reads the spool below t->end, which writers do not
 * touch in tail mode. *confirmed gets the bytes the server newly holds.
 */
static int tail_finish(struct writer *w, struct tail *t, int64_t ifgen,
		       const struct gcs_write_opts *opts_in, struct gcs_object *out,
		       uint64_t *confirmed, struct gcs_error *e)
{
	uint64_t total = t->end - t->base;
	uint64_t before = t->sent;
	struct gcs_write_opts opts = *opts_in;
	opts.if_generation_match = ifgen;
	*confirmed = 0;
	if (!t->session && total <= SINGLE_REQUEST_MAX) {
		char *data = xmalloc(total ? total : 1);
		int rc = read_spool(w, data, total, t->base, e);
		if (rc == 0)
			rc = gcs_object_insert(w->env->gcs, t->target, data, total, &opts, out, e);
		free(data);
		if (rc == 0) {
			*confirmed = total - before;
			uploader_confirmed(w->env->uploader, w, t->end);
		}
		return rc;
	}
	if (!t->session) {
		int rc = gcs_upload_start(w->env->gcs, t->target, &opts, &t->session, e);
		if (rc < 0)
			return rc;
	}
	int done = 0;
	while (!done) {
		uint64_t left = total - t->sent;
		uint64_t len = left < w->env->chunk_size ? left : w->env->chunk_size;
		int final = len == left;
		uint64_t persisted = t->sent;
		int rc = send_piece(w, t->session, t->base, t->sent, (size_t)len, final, total,
				    &t->crc, &persisted, &done, out, e);
		if (rc < 0)
			return rc;
		if (!done && final) {
			gcs_error_set_local(e, -EIO, "upload %s: the server did not complete the object",
					    t->target);
			return -EIO;
		}
		t->sent = done ? total : persisted;
		*confirmed = t->sent - before;
	}
	return 0;
}

static int compose_tail(struct writer *w, const char *object, int64_t base_gen,
			const char *tmp, int64_t tmp_gen, const struct gcs_write_opts *opts,
			struct gcs_object *out, struct gcs_error *e)
{
	struct gcs_compose_src srcs[2] = {{object, base_gen}, {tmp, tmp_gen}};
	struct gcs_write_opts o = *opts;
	o.if_generation_match = base_gen;
	int rc = gcs_object_compose(w->env->gcs, object, srcs, 2, &o, out, e);
	struct gcs_error de;
	if (gcs_object_delete(w->env->gcs, tmp, GCS_ANY_GENERATION, &de) < 0 && de.err != -ENOENT)
		log_error("could not delete temporary object %s: %s", tmp, de.msg);
	return rc;
}

/*
 * Publish the tail [base_size, end) with the lock released for the network
 * part (lock held on entry and exit, w->busy set by the caller).
 */
static int publish_tail(struct writer *w, uint64_t end, const struct gcs_write_opts *opts,
			struct gcs_object *out, struct gcs_error *e)
{
	struct tail t;
	tail_take(w, &t, end);
	char *object = xstrdup(w->object);
	int64_t base_gen = w->base_gen;
	int appending = t.base > 0;
	if (!t.target) {
		struct buf target = BUF_INIT;
		int64_t unused;
		tail_target(w, &target, &unused);
		t.target = buf_detach(&target);
	}
	pthread_mutex_unlock(&w->lock);
	uint64_t confirmed = 0;
	int rc;
	if (!appending) {
		rc = tail_finish(w, &t, base_gen, opts, out, &confirmed, e);
	} else {
		struct gcs_object tobj = {0};
		rc = tail_finish(w, &t, 0, opts, &tobj, &confirmed, e);
		if (rc == 0)
			rc = compose_tail(w, object, base_gen, t.target, tobj.generation, opts, out, e);
		else if (t.session)
			gcs_upload_cancel(w->env->gcs, t.session);
		gcs_object_clear(&tobj);
	}
	pthread_mutex_lock(&w->lock);
	writer_pending_sub(w, confirmed);
	/* A session the server refused (an answer not worth asking again: a
	 * corrupted chunk, a session gone) cannot go on: a retry starts anew. */
	int session_lives = e->http == 0 || gcs_status_retryable(e->http);
	if (rc < 0 && !appending && t.session && session_lives) {
		/* Keep the session: a retry of this publish goes on from where it is. */
		w->session = t.session;
		w->session_object = t.target;
		w->sent = t.sent;
		w->sent_crc = t.crc;
		t.session = t.target = NULL;
	} else {
		/* Done, or an append whose temporary is gone: a retry starts the tail afresh. */
		w->sent = 0;
		w->sent_crc = 0;
		if (rc < 0 && !appending && t.session)
			writer_save(w); /* the journal names no dead session */
	}
	tail_clear(&t);
	free(object);
	return rc;
}

/* Publish the whole file (staged mode), lock held throughout: random writes
 * may change any byte, so they wait until the upload has read them. */
static int publish_whole(struct writer *w, uint64_t end, const struct gcs_write_opts *opts,
			 struct gcs_object *out, struct gcs_error *e)
{
	struct tail t = {.base = 0, .end = end, .target = xstrdup(w->object)};
	uint64_t confirmed;
	int rc = tail_finish(w, &t, w->base_gen, opts, out, &confirmed, e);
	if (t.session && rc < 0)
		gcs_upload_cancel(w->env->gcs, t.session);
	tail_clear(&t);
	return rc;
}

/*
 * The one publishing routine, lock held on entry and exit. closing: a close
 * or fsync, which journals first (so a crash means "finish this") and
 * waits for the uploader; otherwise a background publish, which skips a
 * writer that is busy.
 */
static int publish(struct writer *w, int closing, struct gcs_object *out, struct gcs_error *e)
{
	if (w->failed) {
		gcs_error_set_local(e, w->failed, "%s: an earlier write failed (%s); not publishing "
				    "a file that lacks it", w->object, strerror(-w->failed));
		return w->failed;
	}
	if (!w->dirty || w->unlinked)
		return 0;
	if (closing && !w->closing) {
		w->closing = 1;
		writer_save(w);
	}
	if (!closing && w->busy)
		return -EAGAIN;
	while (w->busy)
		pthread_cond_wait(&w->idle, &w->lock);
	if (!w->dirty || w->unlinked)
		return 0;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct gcs_write_opts opts = {
		.if_generation_match = w->base_gen,
		.mtime = w->mtime_set ? &w->mtime : &now,
	};
	int rc = 0;
	if (w->mode == WRITER_TAIL && w->base_size > 0 && w->base_components >= COMPONENT_CAP) {
		log_info("%s: %d components; uploading it whole instead of composing", w->object,
			 w->base_components);
		rc = writer_go_staged(w, e);
	}
	/* Where this version ends: writes are whole under the lock, so never torn. */
	uint64_t end = writer_size(w);
	w->busy = 1;
	int whole = w->mode == WRITER_STAGED;
	int sends = whole || end > w->base_size;  /* not only metadata */
	uploader_track(w->env->uploader, w, whole ? 0 : w->base_size,
		       whole ? 0 : w->base_size + w->sent);
	if (rc < 0) {
		/* e says why */
	} else if (w->mode == WRITER_STAGED) {
		rc = publish_whole(w, end, &opts, out, e);
	} else if (w->base_size > 0 && end == w->base_size) {
		/* Nothing appended: only metadata (mtime) to record. */
		rc = gcs_object_set_mtime(w->env->gcs, w->object, opts.mtime, out, e);
	} else {
		rc = publish_tail(w, end, &opts, out, e);
	}
	w->busy = 0;
	pthread_cond_broadcast(&w->idle);
	if (rc == -ESTALE) {
		gcs_error_set_local(e, rc, "upload %s: the object changed in the bucket since it was "
				    "opened here (generation precondition failed); not overwriting it",
				    w->object);
		/* Retrying can never succeed: the other writer's object stands,
		 * and what was written here stays in the spool, never uploaded. */
		w->failed = rc;
		w->conflict = 1;
		writer_save(w);
	}
	if (rc == 0 && out->size != end) {
		gcs_error_set_local(e, -EIO, "upload %s: the server holds %" PRIu64 " bytes, %" PRIu64
				    " were written", w->object, out->size, end);
		rc = -EIO;
	}
	if (rc == 0 && w->mtime_set && (out->mtime.tv_sec != w->mtime.tv_sec ||
					 out->mtime.tv_nsec != w->mtime.tv_nsec)) {
		/* A session started while streaming carried no mtime: record the one set. */
		struct gcs_object patched;
		if (gcs_object_set_mtime(w->env->gcs, w->object, &w->mtime, &patched, e) == 0) {
			gcs_object_clear(out);
			*out = patched;
		} else {
			log_error("%s: uploaded, but recording its mtime failed: %s", w->object, e->msg);
		}
	}
	uploader_untrack(w->env->uploader, w, rc == 0 && sends);
	if (rc < 0)
		return rc;
	/* Published up to end: later bytes are a new tail composed onto this. */
	writer_drop_session(w, 0);
	w->base_gen = out->generation;
	w->base_size = end;
	w->base_components = out->component_count;
	if (w->mode == WRITER_STAGED) {
		w->mode = WRITER_TAIL;
		w->local_from = 0;
	}
	w->dirty = writer_size(w) != end;
	if (closing)
		w->closing = 0;
	w->published = now;
	writer_save(w);
	if (w->dirty && writer_unsent(w) >= w->env->chunk_size)
		uploader_kick(w->env->uploader, w);
	return 0;
}

int writer_publish(struct writer *w, struct gcs_object *out, struct gcs_error *e)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&w->lock);
	int rc = publish(w, 1, out, e);
	w->publish_failed = rc < 0;
	if (rc < 0)
		observe_publish_failed(w->id, e->msg);
	pthread_mutex_unlock(&w->lock);
	return rc;
}

int writer_publish_due(struct writer *w, double interval, struct gcs_object *out,
		       struct gcs_error *e)
{
	memset(out, 0, sizeof(*out));
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&w->lock);
	double age = (double)(now.tv_sec - w->published.tv_sec) +
		     (double)(now.tv_nsec - w->published.tv_nsec) / 1e9;
	int rc = 0;
	/* Staged files are published whole: only the small ones, at the interval. */
	if (w->dirty && age >= interval && !w->closing &&
	    (w->mode == WRITER_TAIL || writer_size(w) <= STAGED_PUBLISH_MAX))
		rc = publish(w, 0, out, e);
	if (rc < 0 && rc != -EAGAIN)
		observe_publish_failed(w->id, e->msg);
	pthread_mutex_unlock(&w->lock);
	return rc == -EAGAIN ? 0 : rc;
}

int writer_recover(const struct writer_env *env, const char *id, struct spool_state *st, int fd)
{
	struct writer *w = xcalloc(1, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->idle, NULL);
	w->env = env;
	w->refs = 1;
	w->fd = fd;
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->object = st->object;
	st->object = NULL;
	w->base_gen = st->base_gen;
	w->base_size = st->base_size;
	w->mode = st->staged ? WRITER_STAGED : WRITER_TAIL;
	w->local_from = st->staged || !st->base_size ? 0 : st->base_size;
	w->dirty = 1;
	w->mtime.tv_sec = st->mtime_sec;
	w->mtime.tv_nsec = st->mtime_nsec;
	w->mtime_set = st->mtime_sec || st->mtime_nsec;
	struct stat sb;
	if (fstat(fd, &sb) == 0)
		writer_set_size(w, (uint64_t)sb.st_size);
	struct gcs_error e = {0};
	int rc = 0;
	if (st->session && w->mode == WRITER_TAIL) {
		uint64_t persisted = 0;
		int done = 0;
		struct gcs_object obj = {0};
		rc = gcs_upload_query(env->gcs, st->session, &persisted, &done, &obj, &e);
		if (rc == 0 && !done) {
			/* Resume where the server stands, not from zero. */
			w->session = xstrdup(st->session);
			w->session_object = xstrdup(st->session_object);
			char *data = xmalloc(1u << 20);
			uint32_t crc = 0;
			for (uint64_t off = 0; off < persisted && rc == 0;) {
				size_t n = persisted - off < (1u << 20) ? (size_t)(persisted - off) : 1u << 20;
				rc = read_spool(w, data, n, w->base_size + off, &e);
				crc = crc32c_update(crc, data, n);
				off += n;
			}
			free(data);
			w->sent = persisted;
			w->sent_crc = crc;
			log_info("%s: resuming its upload at byte %" PRIu64, w->object, persisted);
		} else if (rc == -ENOENT || (rc == 0 && done && w->base_size == 0)) {
			/* Session gone (start again from the spool), or already complete. */
			if (rc == 0 && done && obj.size == writer_size(w)) {
				w->dirty = 0;
				log_info("%s: its upload had completed", w->object);
			}
			rc = 0;
		}
		gcs_object_clear(&obj);
	}
	if (rc == 0 && w->dirty) {
		struct gcs_object out;
		rc = writer_publish(w, &out, &e);
		if (rc == 0)
			log_info("%s: finished the upload an earlier run left in the spool (%" PRIu64
				 " bytes)", w->object, writer_size(w));
		gcs_object_clear(&out);
	}
	if (rc < 0)
		log_error("%s: could not finish the upload left in the spool: %s", w->object, e.msg);
	if (st->session_object && strcmp(st->session_object, w->object) != 0) {
		/* A temporary tail the earlier run may have completed. */
		struct gcs_error de;
		if (gcs_object_delete(env->gcs, st->session_object, GCS_ANY_GENERATION, &de) < 0 &&
		    de.err != -ENOENT)
			log_error("could not delete temporary object %s: %s", st->session_object, de.msg);
	}
	writer_unref(w);
	return rc;
}
