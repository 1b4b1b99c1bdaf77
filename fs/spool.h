/*
 * spool: where a file's written bytes and its upload state live until the
 * object holds them, so a mount killed at any point (kill -9, OOM) finishes
 * the work when it starts again.
 *
 * One directory per mount target (endpoint, bucket, prefix), mode 0700,
 * under spool_dir, held by the mount with a lock (flock on its file
 * "lock", let go when the process ends however it ends). A second mount of
 * the same target at the same time takes the next of up to SPOOL_SIBLINGS
 * directories (HASH-2, HASH-3, ...), so neither takes the other's open
 * files for an earlier run's leftovers; a mount moves the entries of any
 * sibling nobody holds into its own, to finish them. Each file open for
 * writing has two entries there:
 *   ID.data    the file's bytes (sparse where the object already holds them)
 *   ID.journal its journal: object name, the generation and size already
 *              published, the resumable session and what the server
 *              confirmed of it, whether a close/fsync had begun.
 * The journal is rewritten at each state change, atomically for a process
 * that dies: in place with one write when it fits a page (it does unless
 * names and session URIs are near their limits), else by rename. Its last
 * line carries a CRC32C of the others, so a rewrite seen half done (by the
 * status page, while the writer works) is refused, not misread. Neither
 * file is fsynced: the kernel keeps both across a crash of the process
 * (kill -9, OOM), which is what the spool is for, and a pod whose node dies
 * loses its local disk anyway.
 */
#ifndef GCSMOUNT_SPOOL_H
#define GCSMOUNT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool_state {
	int version;             /* of the journal read (written: the current one) */
	char *object;            /* full object name */
	int64_t base_gen;        /* generation published (0: none) */
	uint64_t base_size;      /* bytes the object holds (the tail starts here) */
	int staged;              /* 1: upload the whole file, not a tail */
	char *session;           /* resumable session of the tail, or NULL */
	char *session_object;    /* the object that session writes (the file or a temp) */
	uint64_t sent;           /* tail bytes the server confirmed */
	int closing;             /* a close or fsync had begun: finish it */
	int symlink;
	int conflict;            /* the object changed in the bucket: kept, never uploaded */
	int64_t mtime_sec;       /* 0: none recorded */
	long mtime_nsec;
};

#define SPOOL_SIBLINGS 16

struct spool {
	char *dir;               /* the mount's own spool directory */
	int lock_fd;             /* holds its lock */
	unsigned long counter;
};

/*
 * Create (0700) root/<hash of key>, or the first sibling no other mount
 * holds, lock it and return it in s. 0, or -EBUSY when all are held, or
 * -errno.
 */
int spool_open(struct spool *s, const char *root, const char *key);
void spool_close(struct spool *s);

/* A new entry: creates ID.data (returns its fd). id receives the ID. */
int spool_create(struct spool *s, char *id, size_t idlen, int *fd);
/* Write the journal of entry id. 0 or -errno. */
int spool_save(const struct spool *s, const char *id, const struct spool_state *st);
/*
 * The server now holds a data file's bytes before `end`: let the page cache
 * go of them. Pages already written out are dropped, the rest are written
 * out now and dropped by a later call, so a file streamed for gigabytes
 * holds about a chunk or two of page cache, not its size (which a pod's
 * memory limit counts). The bytes stay in the file; reading them back
 * reads the disk.
 */
void spool_settle(int fd, uint64_t end);
/* Remove both files of an entry. */
void spool_remove(const struct spool *s, const char *id);

/* Journal text ("key value" lines) <-> state (pure; exposed for tests). */
char *spool_state_to_text(const struct spool_state *st);
int spool_state_from_text(const char *text, size_t len, struct spool_state *st);
void spool_state_clear(struct spool_state *st);

/*
 * Entry id's journal (st) and data file (*fd, the caller's): 0, or -errno
 * (-ENOENT: no such entry; an unreadable one is logged).
 */
int spool_load(const struct spool *s, const char *id, struct spool_state *st, int *fd);
/*
 * Entries left by an earlier run: calls fn(arg, id, state, data_fd) for each
 * one with a readable journal and data file (fn owns the fd). Returns the
 * number of entries seen, or -errno.
 */
int spool_scan(const struct spool *s,
	       void (*fn)(void *arg, const char *id, struct spool_state *st, int fd), void *arg);

#endif
