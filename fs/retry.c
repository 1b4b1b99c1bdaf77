/*
 * retry: the publisher's second job, files whose close failed and spool
 * entries an earlier run left that recovery could not upload, kept and
 * tried again on a doubling schedule. See publisher.h.
 */
#include "fs/publisher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "fs/fs.h"

int publisher_hold(struct publisher *p, struct inode *i, int wants_retry)
{
	struct writer *w = i->writer;
	if (!__atomic_load_n(&p->holding, __ATOMIC_ACQUIRE) || !wants_retry)
		return 0;
	if (w->held)
		return 1; /* held already: reopened, and its close failed again */
	if (p->nheld >= p->held_max) {
		if (!p->held_full_said) {
			p->held_full_said = 1;
			log_warn("%d files whose close failed are held for retries, the most this "
				 "mount's open-file limit allows; further ones stay in the spool for "
				 "the next mount", p->nheld);
		}
		return 0;
	}
	p->nheld++;
	__atomic_store_n(&w->held, 1, __ATOMIC_RELAXED);
	w->tries = 0;
	w->retry_wait = p->first_retry;
	w->retry_at = inode_now() + w->retry_wait;
	inode_ref(i);
	/* Named from the inode: the writer's lock may be held by an upload. */
	struct buf path = BUF_INIT;
	inode_path(i, &path);
	log_warn("%s%s: its close failed; the mount keeps it as written and tries again in "
		 "%.0fs, then at doubling intervals", p->fs->prefix, path.data ? path.data : "",
		 p->first_retry);
	buf_free(&path);
	return 1;
}

struct writer *publisher_take_writer(struct publisher *p, struct inode *i)
{
	struct writer *w = i->writer;
	i->writer = NULL;
	i->attr_expires = 0; /* attributes come from the bucket again */
	if (w && w->held) {
		__atomic_store_n(&w->held, 0, __ATOMIC_RELAXED);
		p->nheld--;
		inode_unref(&p->fs->inodes, i); /* the hold's */
	}
	return w;
}

struct held {
	struct inode *inode;
	struct writer *writer;
};

/* Held files whose next try is due (referenced), or with `all`, every one. */
static struct held *held_files(struct fs *fs, int all, size_t *n)
{
	struct inode_table *t = &fs->inodes;
	struct held *out = NULL;
	size_t cap = 0;
	double now = inode_now();
	*n = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct inode *i = t->by_ino[b]; i; i = i->next_ino) {
			struct writer *w = i->writer;
			if (!w || !w->held || w->nopen > 0 || (!all && now < w->retry_at))
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 8;
				out = xrealloc(out, cap * sizeof(*out));
			}
			inode_ref(i);
			writer_ref(w);
			out[(*n)++] = (struct held){i, w};
		}
	pthread_mutex_unlock(&t->lock);
	return out;
}

/* Let a held file go when nothing is left to retry (table lock held): 1 when
 * the caller must drop the inode's reference on w. */
static int let_go_if_done(struct fs *fs, struct inode *i, struct writer *w)
{
	if (i->writer != w || !w->held || w->nopen > 0 || writer_wants_retry(w))
		return 0;
	publisher_take_writer(&fs->publisher, i);
	return 1;
}

static void retry_one(struct publisher *p, struct inode *i, struct writer *w)
{
	struct fs *fs = p->fs;
	struct gcs_object obj = {0};
	struct gcs_error e = {0};
	int rc = writer_wants_retry(w) ? writer_publish(w, &obj, &e) : 0;
	pthread_mutex_lock(&fs->inodes.lock);
	int tries = ++w->tries;
	if (rc < 0 && w->held) {
		w->retry_wait = w->retry_wait * 2 > RETRY_MAX ? RETRY_MAX : w->retry_wait * 2;
		w->retry_at = inode_now() + w->retry_wait;
	}
	double wait = w->retry_wait;
	if (rc == 0 && obj.name && i->writer == w)
		fs_apply_object(fs, i, &obj);
	int drop = let_go_if_done(fs, i, w);
	pthread_mutex_unlock(&fs->inodes.lock);
	if (rc == 0 && obj.name)
		log_info("%s: uploaded on try %d after its close failed", obj.name, tries);
	else if (rc == -ESTALE)
		log_error("%s", e.msg);
	else if (rc < 0)
		log_error("%s (try %d after its close failed; next in %.0fs)", e.msg, tries, wait);
	if (rc == -ESTALE) {
		fs_dir_doubt_parent(fs, i);
		fs_attr_doubt(fs, i);
	}
	gcs_object_clear(&obj);
	if (drop)
		writer_unref(w);
}

void publisher_retry_due(struct publisher *p)
{
	size_t n;
	struct held *hs = held_files(p->fs, 0, &n);
	for (size_t k = 0; k < n; k++) {
		retry_one(p, hs[k].inode, hs[k].writer);
		writer_unref(hs[k].writer);
		pthread_mutex_lock(&p->fs->inodes.lock);
		inode_unref(&p->fs->inodes, hs[k].inode);
		pthread_mutex_unlock(&p->fs->inodes.lock);
	}
	free(hs);
}

struct entry_retry {
	char id[96];
	double at, wait;            /* monotonic seconds; seconds */
	struct entry_retry *next;
};

void publisher_retry_entry(struct publisher *p, const char *id)
{
	struct entry_retry *r = xcalloc(1, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->wait = p->first_retry;
	r->at = inode_now() + r->wait;
	pthread_mutex_lock(&p->lock);
	r->next = p->entries;
	p->entries = r;
	pthread_mutex_unlock(&p->lock);
}

/* One try of entry r: 1 when it is done with (uploaded, gone, or in conflict). */
static int retry_entry(struct publisher *p, const struct entry_retry *r)
{
	struct fs *fs = p->fs;
	struct spool_state st;
	int fd;
	if (spool_load(&fs->spool, r->id, &st, &fd) < 0)
		return 1;
	int rc = 0;
	if (st.conflict)
		close(fd);
	else
		rc = writer_recover(&fs->wenv, r->id, &st, fd);
	spool_state_clear(&st);
	return rc == 0 || rc == -ESTALE;
}

/* Try the entries due (all: every one); those that fail wait twice as long. */
void publisher_retry_entries(struct publisher *p, int all)
{
	double now = inode_now();
	struct entry_retry *due = NULL;
	pthread_mutex_lock(&p->lock);
	for (struct entry_retry **pp = &p->entries; *pp;) {
		struct entry_retry *r = *pp;
		if (all || now >= r->at) {
			*pp = r->next;
			r->next = due;
			due = r;
		} else {
			pp = &r->next;
		}
	}
	pthread_mutex_unlock(&p->lock);
	for (struct entry_retry *r = due, *next; r; r = next) {
		next = r->next;
		if (retry_entry(p, r)) {
			free(r);
			continue;
		}
		r->wait = r->wait * 2 > RETRY_MAX ? RETRY_MAX : r->wait * 2;
		r->at = inode_now() + r->wait;
		pthread_mutex_lock(&p->lock);
		r->next = p->entries;
		p->entries = r;
		pthread_mutex_unlock(&p->lock);
	}
}

void publisher_retry_entries_now(struct publisher *p)
{
	publisher_retry_entries(p, 1);
}

void publisher_release_held(struct fs *fs)
{
	struct publisher *p = &fs->publisher;
	pthread_mutex_lock(&p->lock);
	while (p->entries) {
		struct entry_retry *r = p->entries;
		p->entries = r->next;
		free(r);
	}
	pthread_mutex_unlock(&p->lock);
	size_t n;
	struct held *hs = held_files(fs, 1, &n);
	for (size_t k = 0; k < n; k++) {
		struct inode *i = hs[k].inode;
		struct writer *w = hs[k].writer;
		pthread_mutex_lock(&fs->inodes.lock);
		int drop = i->writer == w && w->held;
		if (drop)
			publisher_take_writer(p, i);
		inode_unref(&fs->inodes, i);
		pthread_mutex_unlock(&fs->inodes.lock);
		if (drop)
			writer_unref(w); /* the inode's; a dirty one keeps its spool entry */
		writer_unref(w);
	}
	free(hs);
}
