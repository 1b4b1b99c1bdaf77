/*
 * reader_follow: an open file meeting a newer generation of its object.
 *
 * Following: a file held open and read at its end (tail -f, TensorBoard)
 * moves on to a generation that only appended, proven by the CRC32C of the
 * pinned bytes continued over the new tail giving the new generation's
 * CRC32C; the tail read for that check is kept to serve the reads after.
 * Re-pinning: a handle that has served no byte yet may take the live
 * generation whole instead of failing with ESTALE. See reader.h.
 */
#include "fs/reader.h"
#include "fs/reader_internal.h"

#include <stdlib.h>

#include "common/buf.h"
#include "common/crc32c.h"

#define FOLLOW_PIECE (1u << 20) /* read at a time to check an object that grew */
#define FOLLOW_PER_READ (256u << 20) /* the most of it one read checks */
#define FOLLOW_KEEP 4 /* pieces of a checked tail kept to serve the reads after */

/* Pieces of a checked tail, in order from the old end, to be read from. */
struct tail_keep {
	char *buf[FOLLOW_KEEP];
	size_t len[FOLLOW_KEEP];
	int n;
};

static void tail_keep_free(struct tail_keep *k)
{
	for (int i = 0; i < k->n; i++)
		free(k->buf[i]);
	k->n = 0;
}

/*
 * The CRC32C of the pinned bytes continued over now's bytes past them, read
 * a piece at a time, into *crc: 0 when done, 1 when FOLLOW_PER_READ bytes
 * were checked and more are left (r->check keeps the place for the next
 * call), or a negative errno. When done in one call, the first pieces (up
 * to FOLLOW_KEEP) are handed back in *keep, so the reads after are served
 * from them rather than fetching the bytes again. Under follow_lock.
 */
static int tail_crc(struct reader *r, const struct reader_pin *was, const struct reader_pin *now,
		    uint32_t *crc, struct tail_keep *keep, struct gcs_error *e)
{
	uint64_t at = was->size;
	*crc = was->crc32c;
	if (r->check.generation == now->generation) {
		at = r->check.upto;
		*crc = r->check.crc;
	}
	r->check.generation = 0;
	uint64_t stop = now->size - at > FOLLOW_PER_READ ? at + FOLLOW_PER_READ : now->size;
	int keeping = at == was->size && stop == now->size;
	char *buf = xmalloc(FOLLOW_PIECE);
	keep->n = 0;
	int rc = 0;
	while (at < stop) {
		size_t want = stop - at < FOLLOW_PIECE ? (size_t)(stop - at) : FOLLOW_PIECE;
		rc = gcs_object_read(r->gcs, r->object, now->generation, at, buf, want, e);
		if (rc < 0)
			break;
		*crc = crc32c_update(*crc, buf, want);
		at += want;
		if (keeping && keep->n < FOLLOW_KEEP) {
			keep->buf[keep->n] = buf;
			keep->len[keep->n++] = want;
			buf = xmalloc(FOLLOW_PIECE);
		}
	}
	free(buf);
	if (rc == 0 && at < now->size) {
		r->check.generation = now->generation;
		r->check.upto = at;
		r->check.crc = *crc;
		rc = 1;
	}
	if (rc != 0)
		tail_keep_free(keep);
	return rc;
}

/* The kept pieces as ready segments from off, while slots and the budget have room. */
static void tail_hold(struct reader *r, uint64_t off, struct tail_keep *keep)
{
	int i = 0;
	for (; i < keep->n; i++) {
		if (!reader_seg_hold(r, reader_seg_free_slot(r, off, 0), off, keep->buf[i], keep->len[i]))
			break;
		off += keep->len[i];
	}
	for (; i < keep->n; i++)
		free(keep->buf[i]);
	keep->n = 0;
}

int reader_follow(struct reader *r, const struct reader_pin *now, struct gcs_error *e)
{
	pthread_mutex_lock(&r->follow_lock);
	struct reader_pin was = reader_pin_of(r);
	int rc = 0;
	if (now->generation == r->refused) {
		rc = 3;
		goto out;
	}
	if (now->generation == was.generation)
		goto out;
	if (!was.has_crc32c || !now->has_crc32c || now->size <= was.size) {
		rc = 2;
	} else {
		uint32_t crc;
		struct tail_keep keep;
		rc = tail_crc(r, &was, now, &crc, &keep, e);
		if (rc == 1) {
			rc = 0; /* a long tail: the next read goes on checking it */
		} else if (rc == 0 && crc != now->crc32c) {
			tail_keep_free(&keep);
			rc = 2;
		} else if (rc == 0) {
			pthread_mutex_lock(&r->lock);
			r->pin = *now;
			/* The new bytes from the old end are what the reads ask for next. */
			tail_hold(r, was.size, &keep);
			pthread_mutex_unlock(&r->lock);
			rc = 1;
		}
	}
	if (rc == 2)
		r->refused = now->generation;
out:
	pthread_mutex_unlock(&r->follow_lock);
	return rc;
}

int reader_repin(struct reader *r, const struct reader_pin *now)
{
	pthread_mutex_lock(&r->follow_lock);
	pthread_mutex_lock(&r->lock);
	/* A view being built may hold bytes of the old generation: not then. */
	int ok = now->generation == r->pin.generation ? 2 : r->served == 0 && !reader_pinned(r);
	if (ok == 1) {
		r->pin = *now;
		for (int k = 0; k < READER_SEGMENTS; k++) {
			struct segment *s = &r->seg[k];
			if (s->state == SEG_LOADING)
				s->stale = 1; /* its thread frees it when it returns */
			else if (s->state != SEG_FREE && !s->pins)
				reader_seg_release(r, s);
		}
		r->next_off = r->ahead = 0;
		r->streak = 0;
		r->window = reader_first_window(r);
		r->rand_fetch = MIN_FETCH;
		r->keep_off = UINT64_MAX;
		r->check.generation = 0;
		r->refused = 0;
	}
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_unlock(&r->follow_lock);
	return ok;
}
