/*
 * reader: windowed ranged reads. See reader.h.
 */
#include "fs/reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

#define FIRST_WINDOW (1u << 20)
#define MIN_FETCH (128u << 10)

struct reader *reader_new(int64_t generation, uint64_t size, size_t max_window)
{
	struct reader *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->generation = generation;
	r->size = size;
	r->max_window = max_window < MIN_FETCH ? MIN_FETCH : max_window;
	r->window = FIRST_WINDOW;
	return r;
}

void reader_free(struct reader *r)
{
	if (!r)
		return;
	free(r->buf);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static size_t copy_out(struct reader *r, void *dst, size_t len, uint64_t off)
{
	if (off < r->buf_off || off >= r->buf_off + r->buf_len)
		return 0;
	size_t at = (size_t)(off - r->buf_off);
	size_t n = r->buf_len - at < len ? r->buf_len - at : len;
	memcpy(dst, r->buf + at, n);
	return n;
}

int reader_read(struct reader *r, struct gcs_client *gcs, const char *object, void *dst,
		size_t len, uint64_t off, size_t *got, struct gcs_error *e)
{
	*got = 0;
	if (off >= r->size || len == 0)
		return 0;
	if (len > r->size - off)
		len = (size_t)(r->size - off);
	pthread_mutex_lock(&r->lock);
	int rc = 0;
	int sequential = off == r->next_off;
	while (*got < len) {
		size_t n = copy_out(r, (char *)dst + *got, len - *got, off + *got);
		if (n) {
			*got += n;
			continue;
		}
		uint64_t at = off + *got;
		size_t want;
		if (sequential) {
			want = r->window;
			if (r->window < r->max_window)
				r->window = r->window * 2 > r->max_window ? r->max_window : r->window * 2;
		} else {
			r->window = FIRST_WINDOW;
			want = len - *got < MIN_FETCH ? MIN_FETCH : len - *got;
		}
		if (want < len - *got)
			want = len - *got;
		if (want > r->size - at)
			want = (size_t)(r->size - at);
		if (want > r->buf_cap) {
			free(r->buf);
			r->buf = xmalloc(want);
			r->buf_cap = want;
		}
		r->buf_len = 0;
		size_t fetched = 0;
		rc = gcs_object_read(gcs, object, r->generation, at, r->buf, want, &fetched, e);
		if (rc == -ENOENT)
			rc = -ESTALE; /* the generation we pinned is gone: replaced or deleted */
		if (rc < 0)
			break;
		r->buf_off = at;
		r->buf_len = fetched;
		if (fetched == 0)
			break;
	}
	r->next_off = off + *got;
	pthread_mutex_unlock(&r->lock);
	return rc;
}
