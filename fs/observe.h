/*
 * observe: what a running mount tells about itself. Metrics (gauges read at
 * each scrape of -o metrics=ADDR:PORT, see common/metrics.h) and the status
 * that `gcsmount status MOUNTPOINT` reads through the extended attribute
 * user.gcsmount.status of the mount's root directory.
 *
 * Both come from one look at what is not yet durable (pending.c): the files
 * open here with bytes the bucket does not hold, and the entries left in
 * the spool (a close whose upload failed, a restart's recovery under way).
 * That look takes the inode table lock only to take references on the open
 * writers, then each writer's lock for at most WRITER_LOCK_WAIT_MS: a
 * writer locked longer is uploading, and its journal says the rest.
 *
 * Failed publishes are remembered by spool entry in a small table
 * (observe.c, its own mutex, a leaf lock) fed by observe_publish_failed().
 */
#ifndef GCSMOUNT_OBSERVE_H
#define GCSMOUNT_OBSERVE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"

struct fs;

/* The extended attribute on the mount's root that holds the status text. */
/* A file at the mount's root, never listed, whose content is the status
 * text (`gcsmount status MOUNTPOINT` reads it). A file rather than an
 * extended attribute: answering getxattr at all would cost `ls -l` a
 * round trip per entry. */
#define STATUS_FILE ".gcsmount-status"
/* The status text stays below this (the kernel caps a value at 64 KiB). */
#define STATUS_TEXT_MAX 60000
#define WRITER_LOCK_WAIT_MS 50

/* One file the bucket does not hold entirely yet. */
struct pending_file {
	char *path;              /* relative to the mount root */
	char id[96];             /* its spool entry */
	uint64_t size;
	uint64_t unpublished;    /* bytes its next publish has to send */
	double age;              /* seconds since its last publish (or its open) */
	const char *state;       /* "open", "uploading", "retrying", "failed", "conflict" or
				  * "spooled" */
	char *error;             /* the last failed publish since then, or NULL */
};

struct pending_list {
	struct pending_file *files;
	size_t n;
};

/* Everything not yet durable, sorted by path. */
void pending_collect(struct fs *fs, struct pending_list *out);
void pending_free(struct pending_list *l);

/*
 * The status text (line-oriented, what user.gcsmount.status holds):
 *   gcsmount-status 1
 *   source gs://BUCKET[/PREFIX]
 *   pending N
 *   file SIZE UNPUBLISHED AGE STATE PATH     (one per file, AGE in seconds)
 *   error MESSAGE                            (the previous file's last error)
 * File lines stop before max bytes; N still counts them all.
 */
void fs_status_text(struct fs *fs, struct buf *out, size_t max);

/* Register the mount's gauges with the metrics registry (once, before the
 * metrics server starts; fs must outlive metrics_serve_stop()). */
void fs_observe_register(struct fs *fs);

/* A publish of the writer with spool entry spool_id failed with msg. */
void observe_publish_failed(const char *spool_id, const char *msg);
/* The last failure of spool_id at or after `since` (NULL: any), copied into
 * out; 0 when there is one, -1 otherwise. */
int observe_last_error(const char *spool_id, const struct timespec *since, char *out,
		       size_t outlen);

#endif
