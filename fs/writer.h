/*
 * writer: the data of a file open for writing in this mount, and how it
 * reaches the bucket.
 *
 * Every byte written goes to the file's spool entry (see spool.h). Two
 * modes:
 *  - tail: the program writes at the end. The bytes past base_size (what
 *    the object already holds) are the tail; once a chunk of it is there it
 *    streams into a resumable session in the background (uploader.h). When
 *    base_size is 0 the session writes the object itself; otherwise it
 *    writes a temporary object that publish composes onto the object, so
 *    an append never re-uploads what the bucket has.
 *  - staged: anything else (a seek back, an overwrite, a truncate). The
 *    spool holds the whole file (the old bytes are fetched once) and
 *    publish uploads it whole.
 * Publishing (close, fsync) carries the CRC32C of what it uploads and a
 * generation precondition: 0 for a new object, the generation it replaces
 * otherwise. A conflict is ESTALE, never a clobber. After a publish the
 * file stays open and writable: base_size moves to the end, and later
 * appends become a new tail.
 *
 * Lifetime: reference counted (writer_ref/writer_unref); open handles,
 * the uploader and readers in progress hold references. w->lock guards all
 * fields but size and next_queued; it is taken after the inode table lock
 * and never while holding the uploader's lock.
 */
#ifndef GCSMOUNT_WRITER_H
#define GCSMOUNT_WRITER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "fs/spool.h"
#include "gcs/gcs.h"

struct uploader;

/* What every writer of a mount shares. */
struct writer_env {
	struct gcs_client *gcs;
	struct spool *spool;
	struct uploader *uploader;
	uint64_t chunk_size;
	const char *tmp_prefix;      /* temporary objects: PREFIX/.gcsmount-tmp/ */
};

enum writer_mode { WRITER_TAIL, WRITER_STAGED };

struct writer {
	pthread_mutex_t lock;
	pthread_cond_t idle;         /* busy went to 0 */
	const struct writer_env *env;
	unsigned refs;               /* atomic */
	int nopen;                   /* write handles; guarded by the inode table lock */
	char id[96];                 /* spool entry */
	int fd;                      /* spool data */
	uint64_t size;               /* atomic loads outside the lock */
	enum writer_mode mode;
	int dirty;                   /* something not published */
	char *object;
	int64_t base_gen;            /* the object as published; 0: none */
	uint64_t base_size;
	int base_components;
	uint64_t local_from;         /* the spool holds [local_from, size) */
	char *session;               /* tail session, or NULL */
	char *session_object;
	uint64_t sent;               /* tail bytes confirmed by the server */
	uint32_t sent_crc;           /* their CRC32C */
	int busy;                    /* the uploader is sending a chunk */
	uint64_t pending;            /* this writer's share of the uploader's budget */
	int pressure;                /* the budget is spent: send what can be sent */
	int closing;                 /* a close/fsync publish has begun (journal) */
	struct timespec published;   /* when the object last caught up (or the open) */
	struct timespec mtime;
	int mtime_set;
	int unlinked;
	int failed;                  /* a write failed (ENOSPC...): never publish this file */
	int conflict;                /* the object changed in the bucket: the spool keeps what was
				      * written here (journal), never uploaded */
	int publish_failed;          /* the last publish failed and nothing changed since */
	int symlink;
	struct writer *next_queued;  /* uploader queue; guarded by the uploader lock */
	int queued;                  /* same */
	/* The upload under way, as the progress line sees it (uploader.h).
	 * Atomics, read without the lock. */
	uint64_t up_base;            /* file offset where it started */
	uint64_t up_done;            /* the server holds the bytes below this */
	int64_t up_since;            /* CLOCK_MONOTONIC ns when it started; 0: never */
	int64_t up_paused;           /* ns when it paused; 0 while sending */
	struct writer *next_active;  /* the uploader's list; guarded by the uploader lock */
	int active;                  /* same */
	/* Its close failed and no handle is open any more: the inode keeps it,
	 * and the publisher tries it again at retry_at (see publisher.h).
	 * Guarded by the inode table lock; `held` is also read atomically. */
	int held;
	double retry_at;             /* monotonic seconds */
	double retry_wait;           /* seconds until the try after that */
	int tries;                   /* tries since the close that failed */
};

/*
 * A writer for object. base_gen, base_size, base_components: the object as
 * it is now (0, 0, 0: none). truncate: the file starts empty.
 */
int writer_open(const struct writer_env *env, const char *object, int64_t base_gen,
		uint64_t base_size, int base_components, int truncate, struct writer **out);
void writer_ref(struct writer *w);
/* Say where a file that lost a conflict is kept: spool entry id in dir,
 * whose journal says st. */
void writer_note_conflict(const char *dir, const char *id, const struct spool_state *st);
/* Drops a reference; the last one frees the writer and, when everything
 * was published (or the file unlinked), its spool entry. */
void writer_unref(struct writer *w);

int writer_write(struct writer *w, const void *buf, size_t len, off_t off);
/* The part of an existing file opened for writing that only the bucket
 * holds: the bytes below `upto` of generation `generation`. */
struct writer_below {
	int64_t generation;
	uint64_t upto;
};
/*
 * Read what the program wrote, up to len bytes at off (*got of them; 0 at
 * the end). Returns 0 when they came from the spool; 1, reading nothing,
 * when the byte at off is one only the bucket holds, with *below saying
 * which generation holds it and up to where (the caller reads those, then
 * asks again from there); or a negative errno with e filled.
 */
int writer_read(struct writer *w, void *buf, size_t len, off_t off, size_t *got,
		struct writer_below *below, struct gcs_error *e);
int writer_truncate(struct writer *w, uint64_t size);
/* Record an mtime for the next publish; returns 0 when nothing is waiting to
 * be published, so the caller must record it on the object itself. */
int writer_set_mtime(struct writer *w, const struct timespec *t);
uint64_t writer_size(struct writer *w);
/* The name changed (after a rename published it as gen). */
void writer_renamed(struct writer *w, const char *object, int64_t gen);
void writer_unlink(struct writer *w);
int writer_is_dirty(struct writer *w);
/* Dirty with bytes a later try could still publish: not unlinked, and no
 * write failure or conflict that rules the file out. */
int writer_wants_retry(struct writer *w);
/* Dirty with something new since the last publish failed (that one was
 * reported to the program and stays in the spool). */
int writer_has_news(struct writer *w);

/* Make the object hold every byte written so far. out->name is NULL when
 * there was nothing to do. */
int writer_publish(struct writer *w, struct gcs_object *out, struct gcs_error *e);

/*
 * Background publishing of a file held open: when it changed and its last
 * publish is interval seconds old, publish what was written so far without
 * making the writer wait (tail mode), or whole when it is a small staged
 * file. Skips a writer that is busy.
 */
int writer_publish_due(struct writer *w, double interval, struct gcs_object *out,
		       struct gcs_error *e);

/* Uploader side: send the tail's full chunks (or smaller under pressure). */
void writer_stream(struct writer *w);

/* Finish an entry an earlier run left in the spool (see recover.c). */
int writer_recover(const struct writer_env *env, const char *id, struct spool_state *st, int fd);

#endif
