/*
 * inode: two chained hash tables over the same inodes. See inode.h.
 */
#include "fs/inode.h"

#include <stdlib.h>
#include <string.h>

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
	uint64_t h = 1469598103934665603ull ^ parent->ino;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)(h ^ h >> 29) & (n - 1);
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

struct inode *inode_child_get(struct inode_table *t, struct inode *parent, const char *name,
			      enum inode_kind kind)
{
	struct inode *i = inode_child(t, parent, name);
	if (i)
		return i;
	if (t->count >= t->nbuckets)
		grow(t);
	i = xcalloc(1, sizeof(*i));
	i->ino = t->next_ino++;
	i->parent = parent;
	i->name = xstrdup(name);
	i->kind = kind;
	inode_ref(parent);
	link_ino(t, i);
	link_name(t, i);
	t->count++;
	return i;
}

void inode_unhash(struct inode_table *t, struct inode *i)
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
}

void inode_move(struct inode_table *t, struct inode *i, struct inode *parent, const char *name)
{
	struct inode *old = inode_child(t, parent, name);
	if (old && old != i)
		inode_unhash(t, old);
	inode_unhash(t, i);
	struct inode *old_parent = i->parent;
	inode_ref(parent);
	i->parent = parent;
	free(i->name);
	i->name = xstrdup(name);
	link_name(t, i);
	inode_unref(t, old_parent);
}

void inode_ref(struct inode *i)
{
	i->refs++;
}

static void maybe_free(struct inode_table *t, struct inode *i)
{
	while (i && i->nlookup == 0 && i->refs == 0 && i != t->root) {
		inode_unhash(t, i);
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
