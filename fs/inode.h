/*
 * inode: the table of inodes the kernel knows, by number and by
 * (parent, name).
 *
 * An inode stands for a name under the mount's prefix, not for an object:
 * rename moves the inode (parent and name change, the number stays), and
 * the object name is built from the chain of parents when needed.
 *
 * Lifetime: an inode lives while the kernel holds lookups on it (nlookup),
 * or something inside holds a reference (a child's parent pointer, an open
 * handle). inode_unref()/inode_forget() free it when both reach zero.
 *
 * Locking: one mutex, table->lock, guards the hash chains, nlookup, refs,
 * parent, name, and the cached attributes (kind, size, generation, mtime,
 * attr_expires, flags). The writer pointer is set and cleared under it too;
 * what the writer holds is guarded by the writer's own lock (lock order:
 * table → writer, never the reverse).
 */
#ifndef GCSMOUNT_INODE_H
#define GCSMOUNT_INODE_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

enum inode_kind { INODE_DIR, INODE_FILE, INODE_SYMLINK };

struct writer;

struct inode {
	fuse_ino_t ino;
	uint64_t nlookup;
	unsigned refs;
	struct inode *parent;       /* NULL for the root */
	char *name;                 /* "" for the root */
	int hashed;                 /* reachable by (parent, name) */
	enum inode_kind kind;
	uint64_t size;
	int64_t generation;         /* 0: no object (yet) */
	int components;             /* of a composite object, else 1 */
	struct timespec mtime;
	double attr_expires;        /* monotonic seconds; 0: unknown */
	char *symlink_target;
	struct writer *writer;      /* open for writing in this mount */
	struct inode *next_ino;     /* hash chains */
	struct inode *next_name;
};

struct inode_table {
	pthread_mutex_t lock;
	struct inode **by_ino;
	struct inode **by_name;
	size_t nbuckets;
	size_t count;
	fuse_ino_t next_ino;
	struct inode *root;
};

void inode_table_init(struct inode_table *t);
void inode_table_free(struct inode_table *t);

/* Monotonic clock in seconds, for attribute expiry. */
double inode_now(void);

/* All of the following are called with t->lock held. */
struct inode *inode_by_ino(struct inode_table *t, fuse_ino_t ino);
struct inode *inode_child(struct inode_table *t, struct inode *parent, const char *name);
/* Find or create the child; a new one gets kind and no attributes. */
struct inode *inode_child_get(struct inode_table *t, struct inode *parent, const char *name,
			      enum inode_kind kind);
/* Drop the (parent, name) entry: the next lookup of that name makes a new inode. */
void inode_unhash(struct inode_table *t, struct inode *i);
/* Give i a new parent and name, replacing (unhashing) whatever held that name. */
void inode_move(struct inode_table *t, struct inode *i, struct inode *parent, const char *name);
void inode_ref(struct inode *i);
void inode_unref(struct inode_table *t, struct inode *i);
void inode_forget(struct inode_table *t, struct inode *i, uint64_t n);
/* Path relative to the mount root ("" for the root, "a/b" below). */
void inode_path(const struct inode *i, struct buf *out);

#endif
