/*
 * file: reading a credentials file (service-account key, gcloud ADC file,
 * raw token file) with a size cap, one-line error texts, and the file's
 * identity (dev, ino, mtime, size) so a later stat() can tell whether it
 * was replaced.
 */
#ifndef GCSMOUNT_AUTH_FILE_H
#define GCSMOUNT_AUTH_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"

/* Credentials files are small; anything larger is not one. */
#define AUTH_FILE_MAX (256 * 1024)

struct file_ident {
	dev_t dev;
	ino_t ino;
	long long mtime_sec;
	long mtime_nsec;
	off_t size;
	int valid;
};

/*
 * Read all of path into out (replacing its contents) and record the
 * identity of what was read. origin names the source in error lines
 * ("GC_KEY_PATH=/x.json"). Returns 0 or a negative errno with one line in
 * err. The caller wipes out with buf_free_secret().
 */
int auth_file_read(const char *path, const char *origin, struct buf *out,
		   struct file_ident *id, char *err, size_t errlen);

/* stat() path (following symlinks) into id. 0 or negative errno. */
int auth_file_ident(const char *path, struct file_ident *id);

int auth_file_ident_equal(const struct file_ident *a, const struct file_ident *b);

/* 1 if something exists at path (even unreadable), 0 if not. */
int auth_file_exists(const char *path);

#endif
