/*
 * writer: the data of a file open for writing in this mount.
 *
 * The bytes are staged in an unlinked file in the spool directory and
 * uploaded whole on flush/fsync: a multipart upload when small, a resumable
 * session in chunk_size pieces read straight from the staged file when not.
 * Each upload carries the CRC32C of the whole object and a generation
 * precondition (0 for a new object, the generation it replaces otherwise),
 * so a concurrent change elsewhere is a conflict (ESTALE), never a clobber.
 *
 * One writer per inode, shared by every handle open for writing on it.
 * w->lock guards all fields; it is taken after the inode table lock, never
 * before it.
 */
#ifndef GCSMOUNT_WRITER_H
#define GCSMOUNT_WRITER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "gcs/gcs.h"

struct writer {
	pthread_mutex_t lock;
	int fd;                    /* staged bytes */
	uint64_t size;             /* also read without the lock (atomic loads) */
	int dirty;                 /* bytes or mtime not yet uploaded */
	int64_t base_generation;   /* what the next upload replaces; 0: nothing */
	struct timespec mtime;     /* set by setattr; else the time of the upload */
	int mtime_set;
	int unlinked;              /* name removed: never upload */
	int symlink;
	int nopen;                 /* holders (write handles, reads in progress); guarded by the inode table lock */
};

/* A new empty writer (dirty when the object must be (re)written even if nothing is). */
int writer_new(const char *spool, int64_t base_generation, int dirty, struct writer **out);
void writer_free(struct writer *w);

/* Fill the staging file from the object (pinned to generation), up to limit bytes. */
int writer_load(struct writer *w, struct gcs_client *gcs, const char *object,
		int64_t generation, uint64_t size, struct gcs_error *e);

int writer_write(struct writer *w, const void *buf, size_t len, off_t off);
int writer_read(struct writer *w, void *buf, size_t len, off_t off, size_t *got);
int writer_truncate(struct writer *w, uint64_t size);
void writer_set_mtime(struct writer *w, const struct timespec *t);
uint64_t writer_size(struct writer *w);

/*
 * Upload if dirty. chunk_size is the resumable chunk. On success out holds
 * the new object (out->name NULL when nothing was uploaded).
 */
int writer_flush(struct writer *w, struct gcs_client *gcs, const char *object,
		 uint64_t chunk_size, struct gcs_object *out, struct gcs_error *e);

#endif
