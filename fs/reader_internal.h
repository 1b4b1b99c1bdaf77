/*
 * Inside the reader (reader.c, reader_follow.c): segment states and the
 * helpers both use. Not to be included elsewhere. Every function here is
 * called with r->lock held.
 */
#ifndef GCSMOUNT_READER_INTERNAL_H
#define GCSMOUNT_READER_INTERNAL_H

#include "fs/reader.h"

enum { SEG_FREE, SEG_LOADING, SEG_READY, SEG_FAILED };

/* The least a random read fetches, once its fetches have grown. */
#define MIN_FETCH (128u << 10)

/* The window a sequential read starts with: 1 MiB, or read_ahead if smaller. */
size_t reader_first_window(const struct reader *r);
/* Whether a view holds pins on any segment (one is being built or replied). */
int reader_pinned(const struct reader *r);
/* Free s (its buffer back to the pool, its bytes to the budget). */
void reader_seg_release(struct reader *r, struct segment *s);
/* A free slot, evicting a finished, unpinned segment to make one: with
 * behind_only one wholly behind the reader, else the one farthest from
 * near. NULL when none can go. */
struct segment *reader_seg_free_slot(struct reader *r, uint64_t near, int behind_only);
/* Fill the free slot s with the len bytes at off in buf (malloc'd), if the
 * budget has room: 1, and s owns buf then; else 0. */
int reader_seg_hold(struct reader *r, struct segment *s, uint64_t off, char *buf, size_t len);

#endif
