/*
 * uploader: a small pool of threads streaming writers' chunks, and the
 * global budget of unconfirmed bytes. See uploader.h.
 */
#include "fs/uploader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "fs/writer_internal.h"

static void *worker(void *arg)
{
	struct uploader *up = arg;
	pthread_mutex_lock(&up->lock);
	for (;;) {
		while (!up->head && !up->stop)
			pthread_cond_wait(&up->work, &up->lock);
		struct writer *w = up->head;
		if (!w)
			break; /* stopping, queue drained */
		up->head = w->next_queued;
		if (!up->head)
			up->tail = NULL;
		w->next_queued = NULL;
		w->queued = 0;
		pthread_mutex_unlock(&up->lock);
		writer_stream(w);
		writer_unref(w);
		pthread_mutex_lock(&up->lock);
	}
	pthread_mutex_unlock(&up->lock);
	return NULL;
}

int uploader_start(struct uploader *up, int nthreads, uint64_t budget)
{
	memset(up, 0, sizeof(*up));
	pthread_mutex_init(&up->lock, NULL);
	pthread_cond_init(&up->work, NULL);
	pthread_cond_init(&up->progress, NULL);
	up->budget = budget;
	up->threads = xcalloc((size_t)nthreads, sizeof(*up->threads));
	for (int i = 0; i < nthreads; i++) {
		int rc = pthread_create(&up->threads[i], NULL, worker, up);
		if (rc) {
			log_error("uploader: cannot start a thread: %s", strerror(rc));
			uploader_stop(up);
			return -rc;
		}
		up->nthreads++;
	}
	return 0;
}

void uploader_stop(struct uploader *up)
{
	if (!up->threads)
		return;
	pthread_mutex_lock(&up->lock);
	up->stop = 1;
	pthread_cond_broadcast(&up->work);
	pthread_cond_broadcast(&up->progress);
	pthread_mutex_unlock(&up->lock);
	for (int i = 0; i < up->nthreads; i++)
		pthread_join(up->threads[i], NULL);
	free(up->threads);
	up->threads = NULL;
}

void uploader_kick(struct uploader *up, struct writer *w)
{
	pthread_mutex_lock(&up->lock);
	if (!w->queued && !up->stop) {
		writer_ref(w);
		w->queued = 1;
		w->next_queued = NULL;
		if (up->tail)
			up->tail->next_queued = w;
		else
			up->head = w;
		up->tail = w;
		pthread_cond_signal(&up->work);
	}
	pthread_mutex_unlock(&up->lock);
}

void uploader_add_pending(struct uploader *up, uint64_t n)
{
	pthread_mutex_lock(&up->lock);
	up->pending += n;
	pthread_mutex_unlock(&up->lock);
}

void uploader_sub_pending(struct uploader *up, uint64_t n)
{
	pthread_mutex_lock(&up->lock);
	up->pending = n > up->pending ? 0 : up->pending - n;
	pthread_cond_broadcast(&up->progress);
	pthread_mutex_unlock(&up->lock);
}

uint64_t uploader_pending(struct uploader *up)
{
	pthread_mutex_lock(&up->lock);
	uint64_t n = up->pending;
	pthread_mutex_unlock(&up->lock);
	return n;
}

void uploader_throttle(struct uploader *up, struct writer *w)
{
	pthread_mutex_lock(&up->lock);
	while (up->pending > up->budget && !up->stop) {
		/* Only wait for what this writer can itself make progress on. */
		pthread_mutex_unlock(&up->lock);
		pthread_mutex_lock(&w->lock);
		int can = w->mode == WRITER_TAIL && !w->closing && !w->unlinked &&
			  writer_unsent(w) >= 256 * 1024;
		if (can)
			w->pressure = 1;
		pthread_mutex_unlock(&w->lock);
		if (!can)
			return;
		uploader_kick(up, w);
		pthread_mutex_lock(&up->lock);
		if (up->pending > up->budget && !up->stop)
			pthread_cond_wait(&up->progress, &up->lock);
	}
	pthread_mutex_unlock(&up->lock);
}

#define LOAD(p) __atomic_load_n(p, __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELAXED)
#define GRACE_NS ((int64_t)(UPLOAD_PAUSE_GRACE_S * 1e9))

void uploader_track(struct uploader *up, struct writer *w, uint64_t base, uint64_t done)
{
	int64_t now = mono_ns();
	int64_t since = LOAD(&w->up_since), paused = LOAD(&w->up_paused);
	/* The next chunk of the same upload (or the publish that ends it, on
	 * bytes that follow) carries on: one long upload, not many short ones. */
	int goes_on = since && (!paused || now - paused < GRACE_NS) && base >= LOAD(&w->up_base) &&
		      done >= LOAD(&w->up_done);
	if (!goes_on) {
		STORE(&w->up_base, base);
		STORE(&w->up_since, now);
	}
	STORE(&w->up_done, done);
	STORE(&w->up_paused, 0);
	pthread_mutex_lock(&up->lock);
	if (!w->active) {
		w->active = 1;
		w->next_active = up->active;
		up->active = w;
	}
	pthread_mutex_unlock(&up->lock);
}

void uploader_pause(struct uploader *up, struct writer *w)
{
	(void)up;
	STORE(&w->up_paused, mono_ns());
}

void uploader_confirmed(struct uploader *up, struct writer *w, uint64_t done)
{
	uint64_t before = LOAD(&w->up_done);
	if (done <= before)
		return;
	STORE(&w->up_done, done);
	__atomic_add_fetch(&up->bytes_done, done - before, __ATOMIC_RELAXED);
}

void uploader_untrack(struct uploader *up, struct writer *w, int published)
{
	STORE(&w->up_paused, mono_ns());
	int was = 0, sending = 0;
	pthread_mutex_lock(&up->lock);
	void (*on_idle)(void *) = up->on_idle;
	void *arg = up->on_idle_arg;
	if (w->active) {
		struct writer **p = &up->active;
		while (*p != w)
			p = &(*p)->next_active;
		*p = w->next_active;
		w->next_active = NULL;
		w->active = 0;
		was = 1;
		for (struct writer *o = up->active; o && !sending; o = o->next_active)
			sending = LOAD(&o->up_paused) == 0;
	}
	pthread_mutex_unlock(&up->lock);
	if (published)
		__atomic_add_fetch(&up->files_done, 1, __ATOMIC_RELAXED);
	if (was && !sending && on_idle)
		on_idle(arg);
}

void uploader_on_idle(struct uploader *up, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&up->lock);
	up->on_idle = fn;
	up->on_idle_arg = arg;
	pthread_mutex_unlock(&up->lock);
}

void uploader_totals(struct uploader *up, struct upload_totals *out)
{
	memset(out, 0, sizeof(*out));
	int64_t now = mono_ns();
	pthread_mutex_lock(&up->lock);
	for (struct writer *w = up->active; w; w = w->next_active) {
		int64_t paused = LOAD(&w->up_paused);
		if (paused && now - paused >= GRACE_NS)
			continue; /* idle: a file streamed in part, then left open */
		uint64_t size = writer_size(w), base = LOAD(&w->up_base), done = LOAD(&w->up_done);
		uint64_t total = size > base ? size - base : 0;
		uint64_t held = done > base ? done - base : 0;
		if (held > total)
			held = total; /* truncated meanwhile */
		double age = (double)(now - LOAD(&w->up_since)) / 1e9;
		out->files++;
		out->bytes += total;
		out->done += held;
		if (age > out->longest)
			out->longest = age;
	}
	pthread_mutex_unlock(&up->lock);
	out->files_done = __atomic_load_n(&up->files_done, __ATOMIC_RELAXED);
	out->bytes_done = __atomic_load_n(&up->bytes_done, __ATOMIC_RELAXED);
}
