/*
 * publisher: the background thread that
 *  - publishes files held open for writing every publish_interval seconds
 *    (TensorFlow event files, training logs: written for hours, only
 *    fflush()ed), so readers of the bucket see them grow while the job
 *    runs; the work per file is in writer_publish_due();
 *  - tries again the files whose close failed (the bucket out of reach for
 *    longer than retry_deadline, say). Such a file stays what it was in the
 *    mount (its writer stays on the inode, which keeps itself alive, so
 *    stat and reads show what was written, and an open for writing carries
 *    on from there), and it is tried RETRY_FIRST (at most retry_deadline)
 *    seconds after the close, then at doubling intervals up to RETRY_MAX,
 *    until it is uploaded, unlinked, or shown in conflict. At exit the
 *    last try is the shutdown's (mount.c); what fails then stays in the
 *    spool for the next mount;
 *  - tries again, on the same schedule, the spool entries an earlier run
 *    left that this mount's recovery could not upload.
 * It keeps time and finds the files; the uploads are writer_publish's.
 * The retries are in retry.c.
 */
#ifndef GCSMOUNT_PUBLISHER_H
#define GCSMOUNT_PUBLISHER_H

#include <pthread.h>

struct fs;
struct inode;
struct writer;
struct entry_retry;

#define RETRY_FIRST 10.0
#define RETRY_MAX 300.0
/* Files held for retries at most (each keeps its spool file open). */
#define HELD_MAX 4096

struct publisher {
	struct fs *fs;
	double interval;            /* live publishing; 0: off (retries go on) */
	double first_retry;
	pthread_t thread;
	pthread_mutex_t lock;       /* guards stop and entries */
	pthread_cond_t wake;
	int stop;
	int running;
	int holding;                /* atomic: failed closes are kept for retries */
	int held_max;               /* HELD_MAX, or less under a low open-file limit */
	int nheld;                  /* held now; guarded by the inode table lock */
	int held_full_said;         /* same */
	struct entry_retry *entries; /* spool entries to try again */
};

int publisher_start(struct publisher *p, struct fs *fs, double interval,
		    double retry_deadline);
/* Stops the thread and the holding of failed closes (held files stay held
 * until publisher_release_held). */
void publisher_stop(struct publisher *p);

/*
 * The last write handle of i is going (inode table lock held): when its
 * writer still has bytes to publish (its close failed: wants_retry, from
 * writer_wants_retry before the lock was taken), keep it on the inode for
 * retries (logged the first time) and return 1; else 0, and the caller lets
 * it go with publisher_take_writer.
 */
int publisher_hold(struct publisher *p, struct inode *i, int wants_retry);
/* Take i's writer off it (table lock held), dropping the hold and its
 * reference on i if it was held; attributes come from the bucket again.
 * The caller unrefs the writer returned once the lock is released. */
struct writer *publisher_take_writer(struct publisher *p, struct inode *i);
/* Recovery could not upload spool entry id (an earlier run's): try it again. */
void publisher_retry_entry(struct publisher *p, const char *id);
/* At shutdown, the thread stopped: try every such entry once more. */
void publisher_retry_entries_now(struct publisher *p);
/* At exit, once the shutdown's uploads are done: let every held file and
 * entry go (what is not uploaded stays in the spool). */
void publisher_release_held(struct fs *fs);

/* For the thread: try the held files and (all: every, else the due)
 * entries whose time has come. */
void publisher_retry_due(struct publisher *p);
void publisher_retry_entries(struct publisher *p, int all);

#endif
