/*
 * reader: windowed, prefetched ranged reads. See reader.h; following an
 * object that grew and re-pinning one that was replaced are in reader_follow.c.
 */
#include "fs/reader.h"
#include "fs/reader_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/log.h"

#define FIRST_WINDOW (1u << 20)
#define SMALLEST_FETCH (4u << 10)
#define SEG_MAX (8u << 20)
/* Segment buffers kept for reuse: fresh pages cost a fault each (zeroed by
 * the kernel), which made faults, not the network, the price of a read. */
#define POOL_KEEP 12
#define POOL_IDLE_SEC 30
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

struct job {
	struct reader *r;
	struct segment *s;
	int64_t generation;         /* the pin when it was queued */
	struct job *next;
};

struct prefetcher {
	pthread_mutex_t lock;       /* guards the queue, used, stop */
	pthread_cond_t work;
	struct job *head, *tail;
	pthread_t *threads;
	int nthreads;
	int stop;
	uint64_t used;              /* bytes of segment buffers, all readers */
	uint64_t budget;
	char *pool[POOL_KEEP];      /* idle SEG_MAX buffers, mapped and faulted in */
	int pooled;
	time_t last_use;            /* when a buffer last left or joined the pool */
};

static time_t now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* A SEG_MAX buffer: from the pool, else freshly mapped. NULL when memory is short. */
static char *pool_get(struct prefetcher *pf)
{
	pthread_mutex_lock(&pf->lock);
	char *b = pf->pooled ? pf->pool[--pf->pooled] : NULL;
	pf->last_use = now_sec();
	pthread_mutex_unlock(&pf->lock);
	if (b)
		return b;
	b = mmap(NULL, SEG_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
	/* Huge pages where the system allows them, populated at once: both
	 * only spare faults, so a refusal changes nothing but speed. */
	(void)madvise(b, SEG_MAX, MADV_HUGEPAGE);
	(void)madvise(b, SEG_MAX, MADV_POPULATE_WRITE);
	return b;
}

static void pool_put(struct prefetcher *pf, char *b)
{
	pthread_mutex_lock(&pf->lock);
	if (pf->pooled < POOL_KEEP) {
		pf->pool[pf->pooled++] = b;
		b = NULL;
	}
	pf->last_use = now_sec();
	pthread_mutex_unlock(&pf->lock);
	if (b)
		munmap(b, SEG_MAX);
}

/* Give idle buffers back to the system once reading has paused. Under pf->lock. */
static void pool_trim(struct prefetcher *pf, int all)
{
	if (!all && now_sec() - pf->last_use < POOL_IDLE_SEC)
		return;
	while (pf->pooled > 0)
		munmap(pf->pool[--pf->pooled], SEG_MAX);
}

/* Bytes of a loading segment landed: publish them, waking a read that needs them. */
static void seg_arrived(void *arg, size_t n)
{
	const struct job *j = arg;
	struct reader *r = j->r;
	struct segment *s = j->s;
	pthread_mutex_lock(&r->lock);
	if (n > s->got && !s->stale) {
		s->got = n;
		if (s->waiting && s->off + n >= s->wake_at) {
			s->wake_at = UINT64_MAX;
			pthread_cond_broadcast(&r->changed);
		}
	}
	pthread_mutex_unlock(&r->lock);
}

static void *prefetch_worker(void *arg)
{
	struct prefetcher *pf = arg;
	pthread_mutex_lock(&pf->lock);
	for (;;) {
		while (!pf->head && !pf->stop) {
			if (!pf->pooled) {
				pthread_cond_wait(&pf->work, &pf->lock);
				continue;
			}
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += POOL_IDLE_SEC;
			if (pthread_cond_timedwait(&pf->work, &pf->lock, &until) != 0)
				pool_trim(pf, 0);
		}
		struct job *j = pf->head;
		if (!j)
			break;
		pf->head = j->next;
		if (!pf->head)
			pf->tail = NULL;
		pthread_mutex_unlock(&pf->lock);
		struct reader *r = j->r;
		struct segment *s = j->s;
		size_t got = 0;
		struct gcs_error e = {0};
		/* The buffer is taken here, not by the read that queued the job:
		 * a fresh one is faulted in (milliseconds for 8 MiB), which must
		 * not hold up the reader or the lock that publishes arrivals. */
		char *buf = pool_get(pf);
		int rc;
		if (buf) {
			pthread_mutex_lock(&r->lock);
			s->buf = buf;
			pthread_mutex_unlock(&r->lock);
			rc = gcs_object_read_streamed(r->gcs, r->object, j->generation, s->off, buf,
						      s->len, &got, seg_arrived, j, &e);
		} else {
			rc = -ENOMEM;
			e.err = rc;
			snprintf(e.msg, sizeof(e.msg), "read %s: no memory for read-ahead", r->object);
		}
		pthread_mutex_lock(&r->lock);
		if (s->stale) {
			reader_seg_release(r, s);
		} else {
			if (got > s->got)
				s->got = got;
			if (rc < 0) {
				s->state = SEG_FAILED;
				s->err = e;
			} else {
				s->state = SEG_READY;
			}
		}
		r->loading--;
		pthread_cond_broadcast(&r->changed);
		pthread_mutex_unlock(&r->lock);
		free(j);
		pthread_mutex_lock(&pf->lock);
	}
	pthread_mutex_unlock(&pf->lock);
	return NULL;
}

struct prefetcher *prefetcher_new(int threads, uint64_t budget)
{
	struct prefetcher *pf = xcalloc(1, sizeof(*pf));
	pthread_mutex_init(&pf->lock, NULL);
	pthread_cond_init(&pf->work, NULL);
	pf->budget = budget;
	pf->threads = xcalloc((size_t)threads, sizeof(*pf->threads));
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&pf->threads[i], NULL, prefetch_worker, pf) != 0)
			break;
		pf->nthreads++;
	}
	if (pf->nthreads < threads)
		log_warn("prefetch: started %d of %d threads", pf->nthreads, threads);
	return pf;
}

void prefetcher_free(struct prefetcher *pf)
{
	if (!pf)
		return;
	pthread_mutex_lock(&pf->lock);
	pf->stop = 1;
	pthread_cond_broadcast(&pf->work);
	pthread_mutex_unlock(&pf->lock);
	for (int i = 0; i < pf->nthreads; i++)
		pthread_join(pf->threads[i], NULL);
	pool_trim(pf, 1);
	free(pf->threads);
	free(pf);
}

/* Take len bytes of the budget; 0 when it is spent. */
static int budget_take(struct prefetcher *pf, size_t len)
{
	pthread_mutex_lock(&pf->lock);
	int ok = pf->used + len <= pf->budget;
	if (ok)
		pf->used += len;
	pthread_mutex_unlock(&pf->lock);
	return ok;
}

static void budget_give(struct prefetcher *pf, size_t len)
{
	pthread_mutex_lock(&pf->lock);
	pf->used = len > pf->used ? 0 : pf->used - len;
	pthread_mutex_unlock(&pf->lock);
}

/* The window a sequential read starts with: 1 MiB, or read_ahead if smaller. */
size_t reader_first_window(const struct reader *r)
{
	return r->max_window < FIRST_WINDOW ? r->max_window : FIRST_WINDOW;
}

struct reader *reader_new(struct prefetcher *pf, struct gcs_client *gcs, const char *object,
			  const struct reader_pin *pin, size_t max_window)
{
	struct reader *r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->changed, NULL);
	pthread_mutex_init(&r->follow_lock, NULL);
	r->pf = pf;
	r->gcs = gcs;
	r->object = xstrdup(object);
	r->pin = *pin;
	r->max_window = max_window < MIN_FETCH ? MIN_FETCH : max_window;
	r->window = reader_first_window(r);
	r->rand_fetch = MIN_FETCH;
	r->keep_off = UINT64_MAX;
	return r;
}

void reader_seg_release(struct reader *r, struct segment *s)
{
	if (s->buf) {
		if (s->pooled)
			pool_put(r->pf, s->buf);
		else
			free(s->buf);
	}
	if (s->buf || s->pooled)
		budget_give(r->pf, s->len); /* a prefetch holds its budget from the start */
	memset(s, 0, sizeof(*s));
}

int reader_pinned(const struct reader *r)
{
	for (int k = 0; k < READER_SEGMENTS; k++)
		if (r->seg[k].pins)
			return 1;
	return 0;
}

void reader_free(struct reader *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	while (r->loading || reader_pinned(r))
		pthread_cond_wait(&r->changed, &r->lock);
	for (int k = 0; k < READER_SEGMENTS; k++)
		reader_seg_release(r, &r->seg[k]);
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->changed);
	pthread_mutex_destroy(&r->follow_lock);
	free(r->object);
	free(r);
}

static struct segment *seg_covering(struct reader *r, uint64_t off)
{
	for (int k = 0; k < READER_SEGMENTS; k++) {
		struct segment *s = &r->seg[k];
		if (s->state != SEG_FREE && !s->stale && off >= s->off && off < s->off + s->len)
			return s;
	}
	return NULL;
}

/*
 * A free slot. behind_only (prefetch): only a finished segment wholly behind
 * the reader may make room, never one it is still reading or about to.
 * Otherwise (a random read's leftover): the finished segment farthest from
 * `near` goes.
 */
struct segment *reader_seg_free_slot(struct reader *r, uint64_t near, int behind_only)
{
	struct segment *victim = NULL;
	uint64_t worst = 0;
	for (int k = 0; k < READER_SEGMENTS; k++) {
		struct segment *s = &r->seg[k];
		if (s->state == SEG_FREE)
			return s;
		if (s->state == SEG_LOADING || s->pins)
			continue;
		if (behind_only && s->off + s->len > r->next_off)
			continue;
		uint64_t d = s->off > near ? s->off - near : near - s->off;
		if (!victim || d > worst) {
			victim = s;
			worst = d;
		}
	}
	if (victim)
		reader_seg_release(r, victim);
	return victim;
}

/* Fill the free slot s with the len bytes at off in buf (malloc'd), if the
 * budget has room: 1, and s owns buf then; else 0. */
int reader_seg_hold(struct reader *r, struct segment *s, uint64_t off, char *buf, size_t len)
{
	if (!s || !budget_take(r->pf, len))
		return 0;
	s->off = off;
	s->len = len;
	s->got = len;
	s->buf = buf;
	s->state = SEG_READY;
	return 1;
}

/* Drop segments wholly behind off: a sequential reader will not need them. */
static void seg_drop_behind(struct reader *r, uint64_t off)
{
	for (int k = 0; k < READER_SEGMENTS; k++) {
		struct segment *s = &r->seg[k];
		if ((s->state == SEG_READY || s->state == SEG_FAILED) && !s->pins &&
		    s->off + s->len <= off)
			reader_seg_release(r, s);
	}
}

/* Queue fetches of [r->ahead, until) in segments, as slots and budget allow. */
static void prefetch_to(struct reader *r, uint64_t until)
{
	if (until > r->pin.size)
		until = r->pin.size;
	while (r->ahead < until) {
		/* Bytes a segment holds or brings already (a random read's extra, a
		 * followed tail's checked pieces) are not fetched twice. */
		struct segment *have = seg_covering(r, r->ahead);
		if (have && (have->state == SEG_LOADING ||
			     (have->state == SEG_READY && have->got == have->len))) {
			r->ahead = have->off + have->len;
			continue;
		}
		size_t len = until - r->ahead < SEG_MAX ? (size_t)(until - r->ahead) : SEG_MAX;
		/* Top the window up in chunks of half of it (at most a segment):
		 * topping it up after every read would cut the stream into
		 * requests the size of a read. Until a chunk is due, at least
		 * half the window is fetched or on its way. */
		size_t chunk = r->window / 2 < SEG_MAX ? r->window / 2 : SEG_MAX;
		if (len < chunk && until < r->pin.size)
			return;
		struct segment *s = reader_seg_free_slot(r, r->ahead, 1);
		if (!s || !budget_take(r->pf, len))
			return;
		s->off = r->ahead;
		s->len = len;
		s->got = 0;
		s->buf = NULL;          /* the prefetch thread brings a pool buffer */
		s->pooled = 1;
		s->state = SEG_LOADING;
		r->loading++;
		r->ahead += len;
		struct job *j = xcalloc(1, sizeof(*j));
		j->r = r;
		j->s = s;
		j->generation = r->pin.generation;
		struct prefetcher *pf = r->pf;
		pthread_mutex_lock(&pf->lock);
		if (pf->tail)
			pf->tail->next = j;
		else
			pf->head = j;
		pf->tail = j;
		pthread_cond_signal(&pf->work);
		pthread_mutex_unlock(&pf->lock);
	}
}

/* Add [p, p+len) of segment s (NULL: v->own) to the view, pinning s. */
static void view_add(struct reader_view *v, struct segment *s, const char *p, size_t len)
{
	v->span[v->n].p = p;
	v->span[v->n].len = len;
	v->span[v->n].seg = s;
	v->n++;
	v->got += len;
	if (s)
		s->pins++;
}

int reader_view(struct reader *r, size_t len, uint64_t off, struct reader_view *v,
		struct gcs_error *e)
{
	memset(v, 0, sizeof(*v));
	pthread_mutex_lock(&r->lock);
	if (off >= r->pin.size || len == 0) {
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	if (len > r->pin.size - off)
		len = (size_t)(r->pin.size - off);
	int rc = 0;
	/* The kernel sends readahead requests concurrently, a little out of
	 * order: near the expected offset still counts as sequential, once a
	 * read has begun exactly where the one before ended (so two random
	 * reads that land close together do not start a prefetch). */
	uint64_t slack = 2u << 20;
	int sequential = off == r->next_off ||
			 (r->streak && off + slack >= r->next_off && off <= r->next_off + slack);
	r->streak = sequential;
	if (!sequential) {
		/* A seek: the window starts again; what is fetched stays until evicted. */
		r->window = reader_first_window(r);
		r->ahead = off;
	} else if (off > slack) {
		seg_drop_behind(r, off - slack);
	}
	while (v->got < len && rc == 0 && v->n < READER_SPANS) {
		uint64_t at = off + v->got;
		struct segment *s = seg_covering(r, at);
		if (s && at < s->off + s->got) {
			/* Arrived, whether or not the rest of the segment has. */
			if (s->off == r->keep_off && !s->pooled)
				r->keep_used = 1; /* the last random fetch's extra served */
			size_t from = (size_t)(at - s->off);
			size_t n = s->got - from < len - v->got ? s->got - from : len - v->got;
			view_add(v, s, s->buf + from, n);
			continue;
		}
		if (s && s->state == SEG_LOADING) {
			/* Wait for the byte at `at`; the prefetch thread wakes us when it lands. */
			size_t need = len - v->got;
			uint64_t until = s->off + s->len < at + need ? s->off + s->len : at + need;
			if (!s->waiting || until < s->wake_at)
				s->wake_at = until;
			s->waiting++;
			pthread_cond_wait(&r->changed, &r->lock);
			s->waiting--;
			continue;
		}
		if (s && s->state == SEG_FAILED) {
			*e = s->err;
			rc = s->err.err ? s->err.err : -EIO;
			if (!s->pins)
				reader_seg_release(r, s);
			break;
		}
		if (sequential) {
			if (r->ahead < at)
				r->ahead = at;
			prefetch_to(r, at + r->window);
			if (seg_covering(r, at))
				continue;
		}
		/* Nothing covers it and nothing can be fetched ahead: fetch it now,
		 * the rest of the request in one go. */
		/* A random read fetches at least rand_fetch: halved each time the
		 * extra bytes of the last one went unread, doubled back when they
		 * served a later read, so scattered reads cost what they ask for
		 * and clustered ones still share a fetch. */
		if (r->keep_off != UINT64_MAX) {
			if (r->keep_used)
				r->rand_fetch = r->rand_fetch * 2 > MIN_FETCH ? MIN_FETCH
									: r->rand_fetch * 2;
			else if (r->rand_fetch / 2 >= SMALLEST_FETCH)
				r->rand_fetch /= 2;
		}
		size_t want = len - v->got < r->rand_fetch ? r->rand_fetch : len - v->got;
		if (want > r->pin.size - at)
			want = (size_t)(r->pin.size - at);
		char *buf = xmalloc(want);
		int64_t generation = r->pin.generation;
		pthread_mutex_unlock(&r->lock);
		/* Every fetch ends within the pinned size: whole, or an error. */
		rc = gcs_object_read(r->gcs, r->object, generation, at, buf, want, e);
		pthread_mutex_lock(&r->lock);
		if (rc < 0) {
			free(buf);
			break;
		}
		size_t use = want < len - v->got ? want : len - v->got;
		/* Keep what the request did not use for the next small read nearby. */
		struct segment *keep = want > use ? reader_seg_free_slot(r, at, 0) : NULL;
		r->keep_off = UINT64_MAX;
		if (reader_seg_hold(r, keep, at, buf, want)) {
			r->keep_off = at;
			r->keep_used = 0;
			view_add(v, keep, buf, use);
		} else {
			v->own = buf;
			view_add(v, NULL, buf, use);
		}
	}
	if (rc == -ENOENT) {
		rc = -ESTALE; /* the generation we pinned is gone: replaced or deleted */
		snprintf(e->msg, sizeof(e->msg), "read %s: the object was replaced or deleted "
			 "since it was opened", r->object);
		e->err = rc;
	}
	if (rc < 0) {
		pthread_mutex_unlock(&r->lock);
		reader_view_done(r, v);
		return rc;
	}
	if (sequential && v->got) {
		/* Keep the window ahead of the reader, growing while it reads on. */
		if (r->window < r->max_window)
			r->window = r->window * 2 > r->max_window ? r->max_window : r->window * 2;
		prefetch_to(r, off + v->got + r->window);
	}
	if (off + v->got > r->next_off || !sequential)
		r->next_off = off + v->got;
	r->served += v->got;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void reader_view_done(struct reader *r, struct reader_view *v)
{
	int pinned = 0;
	for (int k = 0; k < v->n; k++)
		pinned |= v->span[k].seg != NULL;
	/* Without a pin, r may be gone already (see reader.h): leave it alone. */
	if (pinned) {
		pthread_mutex_lock(&r->lock);
		for (int k = 0; k < v->n; k++)
			if (v->span[k].seg && --v->span[k].seg->pins == 0)
				pthread_cond_broadcast(&r->changed);
		pthread_mutex_unlock(&r->lock);
	}
	free(v->own);
	memset(v, 0, sizeof(*v));
}

struct reader_pin reader_pin_of(struct reader *r)
{
	pthread_mutex_lock(&r->lock);
	struct reader_pin pin = r->pin;
	pthread_mutex_unlock(&r->lock);
	return pin;
}
