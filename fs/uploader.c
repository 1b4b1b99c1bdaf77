/*
 * uploader: a small pool of threads streaming writers' chunks, and the
 * global budget of unconfirmed bytes. See uploader.h.
 */
#include "fs/uploader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
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
