/*
 * reader: reads of one open file, served by ranged GETs pinned to the
 * generation seen at open, so a file replaced underneath gives the old
 * bytes or an error, never a mix.
 *
 * Sequential reads are detected and fetched ahead in a window that starts
 * at 1 MiB and doubles up to read_ahead; a seek resets it. Random reads
 * fetch what is asked, rounded up to 128 KiB. The window is one buffer per
 * open file; r->lock guards it.
 */
#ifndef GCSMOUNT_READER_H
#define GCSMOUNT_READER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "gcs/gcs.h"

struct reader {
	pthread_mutex_t lock;
	int64_t generation;
	uint64_t size;          /* object size at open */
	char *buf;
	size_t buf_cap;
	uint64_t buf_off;       /* object offset of buf[0] */
	size_t buf_len;
	uint64_t next_off;      /* where a sequential reader reads next */
	size_t window;
	size_t max_window;
};

struct reader *reader_new(int64_t generation, uint64_t size, size_t max_window);
void reader_free(struct reader *r);
/* Read up to len bytes at off; *got short only at the end of the object. */
int reader_read(struct reader *r, struct gcs_client *gcs, const char *object, void *dst,
		size_t len, uint64_t off, size_t *got, struct gcs_error *e);

#endif
