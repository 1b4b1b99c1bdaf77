/*
 * inode: two chained hash tables over the same inodes. See inode.h.
 */
#include "fs/inode.h"

#include <stdlib.h>
#include <string.h>

#include "common/hash.h"

#define MAX_DEPTH 600 /* names are at most 1,024 bytes: at most 512 levels */

double inode_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t hash_ino(fuse_ino_t ino, size_t n)
{
	return (size_t)(ino * 0x9E3779B97F4A7C15ull >> 17) & (n - 1);
}

static size_t hash_name(const struct inode *parent, const char *name, size_t n)
{
	return (size_t)hash_str(parent->ino, name) & (n - 1);
}

static void link_ino(struct inode_table *t, struct inode *i)
{
	size_t b = hash_ino(i->ino, t->nbuckets);
	i->next_ino = t->by_ino[b];
	t->by_ino[b] = i;
}

static void link_name(struct inode_table *t, struct inode *i)
{
	size_t b = hash_name(i->parent, i->name, t->nbuckets);
	i->next_name = t->by_name[b];
	t->by_name[b] = i;
	i->hashed = 1;
}

static void grow(struct inode_table *t)
{
	struct inode **old_ino = t->by_ino, **old_name = t->by_name;
	size_t old_n = t->nbuckets;
	t->nbuckets *= 2;
	t->by_ino = xcalloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_name = xcalloc(t->nbuckets, sizeof(*t->by_name));
	for (size_t b = 0; b < old_n; b++) {
		for (struct inode *i = old_ino[b], *next; i; i = next) {
			next = i->next_ino;
			link_ino(t, i);
		}
		for (struct inode *i = old_name[b], *next; i; i = next) {
			next = i->next_name;
			link_name(t, i);
		}
	}
	free(old_ino);
	free(old_name);
}

void inode_table_init(struct inode_table *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = 1024;
	t->by_ino = xcalloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_name = xcalloc(t->nbuckets, sizeof(*t->by_name));
	t->next_ino = FUSE_ROOT_ID + 1;
	struct inode *r = xcalloc(1, sizeof(*r));
	r->ino = FUSE_ROOT_ID;
	r->name = xstrdup("");
	r->kind = INODE_DIR;
	r->nlookup = 1; /* the kernel never forgets the root */
	link_ino(t, r);
	t->root = r;
	t->count = 1;
}

static void inode_destroy(struct inode *i)
{
	free(i->dir);
	free(i->name);
	free(i->symlink_target);
	free(i);
}

void inode_table_free(struct inode_table *t)
{
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct inode *i = t->by_ino[b], *next; i; i = next) {
			next = i->next_ino;
			inode_destroy(i);
		}
	free(t->by_ino);
	free(t->by_name);
	pthread_mutex_destroy(&t->lock);
}

struct inode *inode_by_ino(struct inode_table *t, fuse_ino_t ino)
{
	for (struct inode *i = t->by_ino[hash_ino(ino, t->nbuckets)]; i; i = i->next_ino)
		if (i->ino == ino)
			return i;
	return NULL;
}

struct inode *inode_child(struct inode_table *t, struct inode *parent, const char *name)
{
	for (struct inode *i = t->by_name[hash_name(parent, name, t->nbuckets)]; i; i = i->next_name)
		if (i->parent == parent && strcmp(i->name, name) == 0)
			return i;
	return NULL;
}

/* A complete directory keeps its children while nobody else holds them. */
static int is_complete(const struct inode *dir)
{
	return dir && dir->dir && dir->dir->complete_until > 0;
}

static void sib_link(struct inode_table *t, struct inode *i)
{
	struct inode *p = i->parent;
	i->sib_prev = NULL;
	i->sib_next = p->children;
	if (p->children)
		p->children->sib_prev = i;
	p->children = i;
	inode_dir(p)->nchildren++;
	if (is_complete(p))
		t->known++;
}

static void sib_unlink(struct inode_table *t, struct inode *i)
{
	struct inode *p = i->parent;
	if (i->sib_prev)
		i->sib_prev->sib_next = i->sib_next;
	else
		p->children = i->sib_next;
	if (i->sib_next)
		i->sib_next->sib_prev = i->sib_prev;
	i->sib_prev = i->sib_next = NULL;
	p->dir->nchildren--;
	if (is_complete(p))
		t->known--;
}

struct inode *inode_child_get(struct inode_table *t, struct inode *parent, const char *name,
			      enum inode_kind kind)
{
	struct inode *i = inode_child(t, parent, name);
	return i ? i : inode_child_add(t, parent, name, kind);
}

struct inode *inode_child_add(struct inode_table *t, struct inode *parent, const char *name,
			      enum inode_kind kind)
{
	if (t->count >= t->nbuckets)
		grow(t);
	struct inode *i = xcalloc(1, sizeof(*i));
	i->ino = t->next_ino++;
	i->parent = parent;
	i->name = xstrdup(name);
	i->kind = kind;
	inode_ref(parent);
	link_ino(t, i);
	link_name(t, i);
	sib_link(t, i);
	t->count++;
	return i;
}

static void unhash(struct inode_table *t, struct inode *i)
{
	if (!i->hashed)
		return;
	struct inode **pp = &t->by_name[hash_name(i->parent, i->name, t->nbuckets)];
	while (*pp && *pp != i)
		pp = &(*pp)->next_name;
	if (*pp)
		*pp = i->next_name;
	i->next_name = NULL;
	i->hashed = 0;
	sib_unlink(t, i);
}

static void maybe_free(struct inode_table *t, struct inode *i);

void inode_unhash(struct inode_table *t, struct inode *i)
{
	unhash(t, i);
	maybe_free(t, i); /* a child a complete directory kept, now no name */
}

void inode_move(struct inode_table *t, struct inode *i, struct inode *parent, const char *name)
{
	inode_ref(i); /* whatever the unhash below frees, not i */
	struct inode *old = inode_child(t, parent, name);
	if (old && old != i)
		inode_unhash(t, old);
	unhash(t, i);
	struct inode *old_parent = i->parent;
	inode_ref(parent);
	i->parent = parent;
	free(i->name);
	i->name = xstrdup(name);
	link_name(t, i);
	sib_link(t, i);
	inode_unref(t, old_parent);
	inode_unref(t, i);
}

void inode_ref(struct inode *i)
{
	i->refs++;
}

static void complete_unlink(struct inode_table *t, struct inode *dir);

static void maybe_free(struct inode_table *t, struct inode *i)
{
	while (i && i->nlookup == 0 && i->refs == 0 && i != t->root &&
	       !(i->hashed && is_complete(i->parent))) {
		if (is_complete(i))
			complete_unlink(t, i); /* refs 0: it has no children left */
		unhash(t, i);
		struct inode **pp = &t->by_ino[hash_ino(i->ino, t->nbuckets)];
		while (*pp && *pp != i)
			pp = &(*pp)->next_ino;
		if (*pp)
			*pp = i->next_ino;
		struct inode *parent = i->parent;
		inode_destroy(i);
		t->count--;
		/* The parent loses the reference this child held. */
		i = parent;
		if (i)
			i->refs--;
	}
}

void inode_unref(struct inode_table *t, struct inode *i)
{
	if (!i)
		return;
	i->refs--;
	maybe_free(t, i);
}

void inode_forget(struct inode_table *t, struct inode *i, uint64_t n)
{
	i->nlookup = n > i->nlookup ? 0 : i->nlookup - n;
	maybe_free(t, i);
}

void inode_path(const struct inode *i, struct buf *out)
{
	const struct inode *chain[MAX_DEPTH];
	int depth = 0;
	for (const struct inode *p = i; p && p->parent && depth < MAX_DEPTH; p = p->parent)
		chain[depth++] = p;
	buf_reset(out);
	for (int k = depth - 1; k >= 0; k--) {
		buf_puts(out, chain[k]->name);
		if (k)
			buf_putc(out, '/');
	}
	if (!out->data)
		buf_puts(out, "");
}

struct inode_dir *inode_dir(struct inode *dir)
{
	if (!dir->dir)
		dir->dir = xcalloc(1, sizeof(*dir->dir));
	return dir->dir;
}

int inode_dir_complete(const struct inode *dir, double now)
{
	return dir->dir && dir->dir->complete_until > now;
}

static void complete_unlink(struct inode_table *t, struct inode *dir)
{
	struct inode_dir *d = dir->dir;
	if (d->older)
		d->older->dir->newer = d->newer;
	else
		t->oldest_complete = d->newer;
	if (d->newer)
		d->newer->dir->older = d->older;
	else
		t->newest_complete = d->older;
	d->older = d->newer = NULL;
	d->complete_until = 0;
	t->known -= d->nchildren;
}

void inode_dir_set_complete(struct inode_table *t, struct inode *dir, double until)
{
	struct inode_dir *d = inode_dir(dir);
	if (d->complete_until > until)
		until = d->complete_until;
	if (d->complete_until > 0)
		complete_unlink(t, dir);
	/* Keep the list sorted by expiry; most insertions land at the end. */
	struct inode *after = t->newest_complete;
	while (after && after->dir->complete_until > until)
		after = after->dir->older;
	d->older = after;
	d->newer = after ? after->dir->newer : t->oldest_complete;
	if (d->newer)
		d->newer->dir->older = dir;
	else
		t->newest_complete = dir;
	if (after)
		after->dir->newer = dir;
	else
		t->oldest_complete = dir;
	d->complete_until = until;
	t->known += d->nchildren;
	/* Over the cap: the oldest knowledge goes first (possibly this one). */
	while (t->known > INODE_DIR_KNOWN_MAX && t->oldest_complete)
		inode_dir_forget(t, t->oldest_complete);
}

void inode_dir_forget(struct inode_table *t, struct inode *dir)
{
	if (!is_complete(dir))
		return;
	complete_unlink(t, dir);
	inode_ref(dir); /* freeing its last child must not free it under the loop */
	for (struct inode *c = dir->children, *next; c; c = next) {
		next = c->sib_next;
		maybe_free(t, c);
	}
	inode_unref(t, dir);
}

void inode_dir_changed(struct inode *dir)
{
	inode_dir(dir)->changes++;
}

void inode_dir_expire(struct inode_table *t, double now)
{
	while (t->oldest_complete && t->oldest_complete->dir->complete_until <= now)
		inode_dir_forget(t, t->oldest_complete);
}

uint32_t inode_mark(struct inode_table *t)
{
	if (++t->mark_seq == 0) {
		/* Wrapped: clear the old marks so that none equals a new one. */
		for (size_t b = 0; b < t->nbuckets; b++)
			for (struct inode *i = t->by_ino[b]; i; i = i->next_ino)
				i->mark = 0;
		t->mark_seq = 1;
	}
	return t->mark_seq;
}
