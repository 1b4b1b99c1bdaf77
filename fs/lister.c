/*
 * lister: a listing's pages fetched ahead, in order. See lister.h.
 */
#include "fs/lister.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct page {
	struct buf body;
	char *token;                /* asked for with (NULL: the first page) */
	int more;                   /* a page follows */
	int rc;
	struct gcs_error err;
};

struct lister {
	pthread_mutex_t lock;       /* guards everything below the thread */
	pthread_cond_t changed;
	pthread_t thread;
	int threaded;               /* 0: no thread could start; pages are fetched when asked */
	struct gcs_client *gcs;
	char *prefix;
	int page_size;
	char *token;                /* the next page to ask for */
	int finished;               /* nothing more to ask for: the last page or a failure */
	int stop;
	struct page q[LISTER_AHEAD];
	int head, count;
};

/* Fetch the page at token into p (which owns token then); the token after it, or NULL. */
static char *fetch_one(struct lister *l, char *token, struct page *p)
{
	memset(p, 0, sizeof(*p));
	p->token = token;
	p->rc = gcs_list_fetch(l->gcs, l->prefix, "/", token, l->page_size, &p->body, &p->err);
	if (p->rc < 0)
		return NULL;
	const char *json = p->body.data ? p->body.data : "";
	char *next = NULL;
	if (gcs_list_token(json, p->body.len, &next) < 0) {
		/* Not a JSON object as far as the quick look can tell: let the
		 * full parse decide (the reader's parse will say what is wrong). */
		struct gcs_list_page page;
		if (gcs_list_parse(json, p->body.len, &page) == 0) {
			next = page.next_page_token;
			page.next_page_token = NULL;
		}
		gcs_list_page_free(&page);
	}
	p->more = next != NULL;
	return next;
}

/* Under l->lock: fetch the next page (the lock let go meanwhile) and queue it. */
static void fetch_next(struct lister *l)
{
	char *token = l->token;
	l->token = NULL;
	pthread_mutex_unlock(&l->lock);
	struct page p;
	char *next = fetch_one(l, token, &p);
	pthread_mutex_lock(&l->lock);
	l->q[(l->head + l->count) % LISTER_AHEAD] = p;
	l->count++;
	l->token = next;
	l->finished = next == NULL;
	pthread_cond_broadcast(&l->changed);
}

static void *lister_run(void *arg)
{
	struct lister *l = arg;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->stop && !l->finished && l->count == LISTER_AHEAD)
			pthread_cond_wait(&l->changed, &l->lock);
		if (l->stop || l->finished)
			break;
		fetch_next(l);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

struct lister *lister_start(struct gcs_client *gcs, const char *prefix, const char *token,
			    int page_size)
{
	struct lister *l = xcalloc(1, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->changed, NULL);
	l->gcs = gcs;
	l->prefix = xstrdup(prefix);
	l->token = token ? xstrdup(token) : NULL;
	l->page_size = page_size;
	l->threaded = pthread_create(&l->thread, NULL, lister_run, l) == 0;
	return l;
}

int lister_next(struct lister *l, struct buf *body, int *more, char **token,
		struct gcs_error *e)
{
	pthread_mutex_lock(&l->lock);
	if (!l->threaded && l->count == 0 && !l->finished)
		fetch_next(l);
	while (l->count == 0 && !l->finished)
		pthread_cond_wait(&l->changed, &l->lock);
	if (l->count == 0) {
		pthread_mutex_unlock(&l->lock);
		*token = NULL;
		*more = 0;
		memset(e, 0, sizeof(*e));
		e->err = -EIO;
		snprintf(e->msg, sizeof(e->msg), "list: asked for a page after the last one");
		return -EIO;
	}
	struct page p = l->q[l->head];
	l->head = (l->head + 1) % LISTER_AHEAD;
	l->count--;
	pthread_cond_broadcast(&l->changed);
	pthread_mutex_unlock(&l->lock);
	*body = p.body;
	*more = p.more;
	*token = p.token;
	if (p.rc < 0)
		*e = p.err;
	return p.rc;
}

void lister_stop(struct lister *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = 1;
	pthread_cond_broadcast(&l->changed);
	pthread_mutex_unlock(&l->lock);
	if (l->threaded)
		pthread_join(l->thread, NULL);
	for (int k = 0; k < l->count; k++) {
		struct page *p = &l->q[(l->head + k) % LISTER_AHEAD];
		buf_free(&p->body);
		free(p->token);
	}
	free(l->token);
	free(l->prefix);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->changed);
	free(l);
}
