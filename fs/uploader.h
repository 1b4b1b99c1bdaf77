/*
 * uploader: the threads that stream full chunks of files being written,
 * while the programs writing them go on, and the global write budget.
 *
 * A writer whose unsent tail reaches a chunk is queued (uploader_kick); a
 * worker takes it and sends chunks until less than one remains. The budget
 * counts bytes written in streaming mode and not yet confirmed by the
 * server; a writer past it waits in uploader_throttle until its own chunks
 * go out, so memory and spool use stay bounded however fast programs write.
 *
 * It also keeps the list of uploads under way, for the progress line
 * (progress.h): a writer is on it from the start of one of its uploads (a
 * streamed chunk, a publish) until a publish ends, streaming fails, or the
 * writer goes away; between two chunks it stays on, marked paused.
 * uploader_totals() adds them up reading only the writers' atomics.
 *
 * up->lock guards the queue, pending, pressure and the list of uploads; it
 * is never held while a writer's lock is taken (the writer's lock may be
 * held when it is taken).
 */
#ifndef GCSMOUNT_UPLOADER_H
#define GCSMOUNT_UPLOADER_H

#include <pthread.h>
#include <stdint.h>

struct writer;

struct uploader {
	pthread_mutex_t lock;
	pthread_cond_t work;        /* queue not empty, or stop */
	pthread_cond_t progress;    /* pending went down */
	struct writer *head, *tail; /* queue, linked through writer->next_queued */
	pthread_t *threads;
	int nthreads;
	int stop;
	uint64_t pending;
	uint64_t budget;
	struct writer *active;      /* uploads under way, linked through writer->next_active */
	uint64_t files_done;        /* atomic: publishes that completed */
	uint64_t bytes_done;        /* atomic: upload bytes the server confirmed */
	void (*on_idle)(void *arg); /* see uploader_on_idle; set before uploads begin */
	void *on_idle_arg;
};

/* An upload paused for less than this (between two chunks) still counts. */
#define UPLOAD_PAUSE_GRACE_S 1.0

/* What the uploads under way add up to. */
struct upload_totals {
	unsigned files;          /* uploading now (or paused under the grace) */
	double longest;          /* seconds the oldest of them has been going on */
	uint64_t bytes;          /* their bytes from where each upload started */
	uint64_t done;           /* of which the server holds */
	uint64_t files_done;     /* since the start: publishes that completed */
	uint64_t bytes_done;     /* since the start: bytes the server confirmed */
};

int uploader_start(struct uploader *up, int nthreads, uint64_t budget);
/* Finish the queue and join the threads. */
void uploader_stop(struct uploader *up);

/* Queue w (taking a reference) unless it is queued already. */
void uploader_kick(struct uploader *up, struct writer *w);
void uploader_add_pending(struct uploader *up, uint64_t n);
void uploader_sub_pending(struct uploader *up, uint64_t n);
/* Bytes counted against the budget now (metrics). */
uint64_t uploader_pending(struct uploader *up);
/* Wait while the budget is spent and w has a chunk's worth of its own to send. */
void uploader_throttle(struct uploader *up, struct writer *w);

/*
 * The list of uploads (w->lock held by the caller of each). track: an
 * upload of w starts (or goes on after a pause) at file offset base, the
 * server holding the bytes below done. pause: a chunk ended, more may
 * follow. confirmed: the server now holds the bytes below done (needs no
 * lock). untrack: the upload ended; published when a publish completed.
 */
void uploader_track(struct uploader *up, struct writer *w, uint64_t base, uint64_t done);
void uploader_pause(struct uploader *up, struct writer *w);
void uploader_confirmed(struct uploader *up, struct writer *w, uint64_t done);
void uploader_untrack(struct uploader *up, struct writer *w, int published);
void uploader_totals(struct uploader *up, struct upload_totals *out);
/* Call fn(arg) when an upload ends and no other is sending, before the
 * program whose close waited for it goes on (the progress line is removed
 * then, not a tick later, so the program's output does not land on it).
 * Called with that writer's lock held: fn must not take a writer's lock or
 * the uploader's. */
void uploader_on_idle(struct uploader *up, void (*fn)(void *arg), void *arg);

#endif
