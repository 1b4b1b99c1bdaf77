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
 * Directory knowledge: a directory may know all its children (see
 * struct inode_dir). While it does, its hashed children *are* its content,
 * so a name that is not among them does not exist, and a child nobody
 * holds (nlookup and refs 0) is kept rather than freed: it stands for a
 * name. Dropping the knowledge (it expired, or something showed it wrong)
 * frees those children. Knowledge expires lazily: inode_dir_expire() is
 * called on the lookup path and drops what is past its time, oldest first,
 * and the table never keeps more than INODE_DIR_KNOWN_MAX such children.
 *
 * Locking: one mutex, table->lock, guards the hash chains, nlookup, refs,
 * parent, name, the children lists, directory knowledge, and the cached
 * attributes (kind, size, generation, mtime, attr_expires, flags). The
 * writer pointer is set and cleared under it too; what the writer holds is
 * guarded by the writer's own lock (lock order: table → writer, never the
 * reverse).
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
struct inode;

/* Children known at once across all directories, at most (memory bound). */
#define INODE_DIR_KNOWN_MAX 100000

/*
 * What a directory knows of its children. Allocated when first needed.
 * complete_until > 0: every child is in the table (hashed), as of a
 * listing or of this mount's own mkdir, plus this mount's changes since;
 * it is trusted until then (monotonic seconds). `changes` counts this
 * mount's changes to the children, so that a listing sent before one of
 * them is not taken as complete.
 */
struct inode_dir {
	double complete_until;      /* 0: the children are not all known */
	uint64_t changes;           /* creates, removals, renames in or out, by this mount */
	double no_list_until;       /* a lookup does not list it before then (too big) */
	int listing;                /* a lookup's listing of it is in flight */
	size_t nchildren;           /* hashed children */
	struct inode *older, *newer; /* the table's complete directories, by complete_until */
};

struct inode {
	fuse_ino_t ino;
	uint64_t nlookup;
	unsigned refs;
	struct inode *parent;       /* NULL for the root */
	char *name;                 /* "" for the root */
	int hashed;                 /* reachable by (parent, name) */
	enum inode_kind kind;
	uint64_t size;
	uint64_t attr_size;         /* the size last given to the kernel (fs_fill_attr) */
	int64_t generation;         /* 0: no object (yet) */
	int components;             /* of a composite object, else 1 */
	uint32_t crc32c;            /* of the object's bytes, when has_crc32c */
	int has_crc32c;
	struct timespec mtime;
	double attr_expires;        /* monotonic seconds; 0: unknown */
	char *symlink_target;
	struct writer *writer;      /* open for writing in this mount */
	int cached_readers;         /* read handles through the page cache (fs_op_open) */
	int opens;                  /* handles open on it (ops_file.c) */
	int64_t cached_gen;         /* ... all pinned to this generation */
	struct inode *next_ino;     /* hash chains */
	struct inode *next_name;
	struct inode *children;     /* hashed children, a list through sib_next */
	struct inode *sib_prev, *sib_next;
	struct inode_dir *dir;      /* directories: what is known of the children */
	uint32_t mark;              /* scratch for a walk over a listing (see inode_mark) */
};

struct inode_table {
	pthread_mutex_t lock;
	struct inode **by_ino;
	struct inode **by_name;
	size_t nbuckets;
	size_t count;
	fuse_ino_t next_ino;
	struct inode *root;
	struct inode *oldest_complete, *newest_complete; /* by complete_until */
	size_t known;               /* children of complete directories */
	uint32_t mark_seq;
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
/* Create the child inode_child() just did not find. */
struct inode *inode_child_add(struct inode_table *t, struct inode *parent, const char *name,
			      enum inode_kind kind);
/* Drop the (parent, name) entry: the next lookup of that name makes a new
 * inode. An inode nobody holds any more is freed here: do not use i after. */
void inode_unhash(struct inode_table *t, struct inode *i);
/* Give i a new parent and name, replacing (unhashing) whatever held that name. */
void inode_move(struct inode_table *t, struct inode *i, struct inode *parent, const char *name);
void inode_ref(struct inode *i);
void inode_unref(struct inode_table *t, struct inode *i);
void inode_forget(struct inode_table *t, struct inode *i, uint64_t n);
/* Path relative to the mount root ("" for the root, "a/b" below). */
void inode_path(const struct inode *i, struct buf *out);

/* The directory's knowledge record, allocated on first use. */
struct inode_dir *inode_dir(struct inode *dir);
/* 1 when every child of dir is known and the knowledge is not past its time. */
int inode_dir_complete(const struct inode *dir, double now);
/* Every child is in the table now: trust that until `until` (a later
 * expiry already set is kept). */
void inode_dir_set_complete(struct inode_table *t, struct inode *dir, double until);
/* The knowledge is gone or wrong: forget it, and free the children it kept. */
void inode_dir_forget(struct inode_table *t, struct inode *dir);
/* A change to dir's children by this mount (create, remove, rename). */
void inode_dir_changed(struct inode *dir);
/* Forget every knowledge past its time (and the oldest beyond the cap). */
void inode_dir_expire(struct inode_table *t, double now);
/* A fresh value for inode->mark, different from every mark in use. */
uint32_t inode_mark(struct inode_table *t);

#endif
