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
 * up->lock guards the queue, pending and pressure; it is never held while a
 * writer's lock is taken.
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

#endif
