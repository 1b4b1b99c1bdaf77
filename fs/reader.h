/*
 * reader: reads of one open file, served by ranged GETs pinned to the
 * generation seen at open, so a file replaced underneath gives the old
 * bytes or an error (ESTALE), never a mix.
 *
 * Sequential reading is detected and fetched ahead: the window starts at
 * 1 MiB (read_ahead if that is smaller) and doubles up to read_ahead, cut
 * into segments of at most 8 MiB that prefetch threads fetch at once, each
 * on its own kept-alive connection; it is topped up half a window (at most
 * a segment) at a time, never by the size of each read. A seek resets the
 * window; a random read fetches what is asked, rounded up to 128 KiB while
 * the extra serves later reads, less (down to 4 KiB) while it does not.
 * Prefetch memory across all readers is capped by a global budget: past
 * it, nothing more is fetched ahead and reads fetch just what they need.
 *
 * A read that reaches the end of the pinned generation may find the object
 * grown (a log or event file that another mount or tool appends to): the
 * reader moves on to the new generation when its first bytes are the pinned
 * ones, checked by the CRC32C of the pinned bytes continued over the new
 * tail, which must give the new generation's CRC32C (reader_follow); the first
 * pieces checked (4 MiB) are kept as segments for the reads after. A
 * read checks at most 256 MiB of tail; a longer one is checked over the
 * reads that follow, which find the old end meanwhile. An object replaced
 * by other bytes is not followed: the reader keeps the old.
 *
 * r->lock guards the segments, the window and the pin; a prefetch thread takes it
 * to publish how far its segment has arrived, and a read uses those bytes
 * at once, before the rest of the segment lands. Reads hand out views of
 * segment memory (no copy); a segment a view pins is not evicted until
 * released.
 */
#ifndef GCSMOUNT_READER_H
#define GCSMOUNT_READER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "gcs/gcs.h"

#define READER_SEGMENTS 10

struct prefetcher;

struct segment {
	uint64_t off;
	size_t len;                 /* asked for */
	size_t got;                 /* arrived so far: usable while still loading */
	char *buf;
	int pooled;                 /* a prefetch: buf is a pool buffer (SEG_MAX), set by its thread */
	int pins;                   /* views holding its bytes: not evicted while > 0 */
	int state;                  /* SEG_FREE, SEG_LOADING, SEG_READY, SEG_FAILED */
	int waiting;                /* reads waiting for its bytes */
	int stale;                  /* of a generation given up (reader_repin): never read */
	uint64_t wake_at;           /* the least offset one of them needs */
	struct gcs_error err;
};

/* What a reader reads: a generation of the object and what the bucket said of it. */
struct reader_pin {
	int64_t generation;
	uint64_t size;
	uint32_t crc32c;
	int has_crc32c;             /* 0: growth cannot be checked, so it is not followed */
};

struct reader {
	pthread_mutex_t lock;
	pthread_cond_t changed;     /* a segment finished */
	pthread_mutex_t follow_lock; /* one reader_follow at a time */
	struct prefetcher *pf;
	struct gcs_client *gcs;
	char *object;               /* the name at open (prefetch uses it) */
	struct reader_pin pin;      /* at open, then each generation followed */
	int64_t refused;            /* a generation found not to extend the pin (follow_lock) */
	struct {                    /* a long tail checked over several reads (follow_lock) */
		int64_t generation;     /* 0: none under way */
		uint64_t upto;
		uint32_t crc;           /* of the object's bytes up to upto */
	} check;
	struct segment seg[READER_SEGMENTS];
	uint64_t next_off;          /* where a sequential reader reads next */
	int streak;                 /* the last read was sequential */
	uint64_t ahead;             /* end of what is fetched or being fetched */
	size_t window;
	size_t max_window;
	int loading;                /* segments in flight */
	size_t rand_fetch;          /* least a random read fetches, 4 KiB..128 KiB */
	uint64_t keep_off;          /* where the last random fetch's extra is kept */
	int keep_used;              /* ... and whether a later read used it */
	uint64_t served;            /* bytes handed out in views */
};

/* The shared prefetch threads and the global budget of their buffers. */
struct prefetcher *prefetcher_new(int threads, uint64_t budget);
void prefetcher_free(struct prefetcher *pf);

struct reader *reader_new(struct prefetcher *pf, struct gcs_client *gcs, const char *object,
			  const struct reader_pin *pin, size_t max_window);
/* Waits for its segments in flight. */
void reader_free(struct reader *r);
/*
 * The bytes of a read, in place: spans of segment memory, pinned until
 * reader_view_done, so a reply can be written from them without a copy.
 * A read the prefetched segments do not cover is fetched into v->own.
 */
#define READER_SPANS (READER_SEGMENTS + 1)
struct reader_view {
	struct {
		const char *p;
		size_t len;
		struct segment *seg;        /* NULL for v->own */
	} span[READER_SPANS];
	int n;
	size_t got;                     /* sum of the spans: short only at the end */
	char *own;
};

/* What the reader reads now. */
struct reader_pin reader_pin_of(struct reader *r);

/*
 * The object is now `now`. Returns 1 when the reader moved on to it (it
 * extends the pinned generation), 2 when it does not (it is not checked
 * again), 3 when it was found not to before, 0 when there is nothing to do
 * now (the same generation, or a long tail whose check a later call goes
 * on with), or a
 * negative errno when the new bytes could not be fetched (the reader
 * stays; a later call tries again).
 */
int reader_follow(struct reader *r, const struct reader_pin *now, struct gcs_error *e);

/*
 * The pinned generation is gone before a byte of it was handed out (a file
 * replaced since the attributes the open used were cached): read `now`
 * instead, dropping whatever was fetched or is on its way. 1 when done, 2
 * when it reads `now` already (another read moved it on), 0 when bytes were
 * served already, which stay the file's bytes.
 */
int reader_repin(struct reader *r, const struct reader_pin *now);
/* Up to len bytes at off. On error nothing is held. */
int reader_view(struct reader *r, size_t len, uint64_t off, struct reader_view *v,
		struct gcs_error *e);
/*
 * Unpin the view's segments; v is empty afterwards. Once a read is replied
 * to, its file may be closed and its handle freed at once: the caller keeps
 * r from before the reply, and reader_free waits for the pins, so r outlives
 * a view that pins it (a view without pins does not touch r).
 */
void reader_view_done(struct reader *r, struct reader_view *v);

#endif
