/*
 * file: read a credentials file with a size cap and record its identity.
 * The identity comes from fstat() on the descriptor that was read, so it
 * always describes the bytes we hold, even if the file is swapped while we
 * read it (Kubernetes replaces a ..data symlink atomically).
 */
#include "auth/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void ident_from_stat(struct file_ident *id, const struct stat *st)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->mtime_sec = (long long)st->st_mtim.tv_sec;
	id->mtime_nsec = st->st_mtim.tv_nsec;
	id->size = st->st_size;
	id->valid = 1;
}

static const char *open_cause(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return "no such file";
	case EACCES:
	case EPERM:
		return "not readable (permission denied)";
	case ELOOP:
		return "symlink loop";
	default:
		return strerror(e);
	}
}

int auth_file_read(const char *path, const char *origin, struct buf *out,
		   struct file_ident *id, char *err, size_t errlen)
{
	buf_reset(out);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", origin, open_cause(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", origin, strerror(e));
		close(fd);
		return -e;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: is a directory, not a file", origin);
		close(fd);
		return -EISDIR;
	}
	if (S_ISREG(st.st_mode) && st.st_size > AUTH_FILE_MAX) {
		snprintf(err, errlen, "%s: too large for a credentials file (%lld bytes)",
			 origin, (long long)st.st_size);
		close(fd);
		return -EFBIG;
	}
	/* Size the buffer once so the secret is not left behind by a realloc. */
	buf_grow(out, S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096);
	for (;;) {
		if (out->cap - out->len <= 1)
			buf_grow(out, 4096);
		ssize_t n = read(fd, out->data + out->len, out->cap - out->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			snprintf(err, errlen, "%s: read failed: %s", origin, strerror(e));
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
		if (out->len > AUTH_FILE_MAX) {
			snprintf(err, errlen, "%s: too large for a credentials file", origin);
			close(fd);
			return -EFBIG;
		}
	}
	close(fd);
	if (id)
		ident_from_stat(id, &st);
	return 0;
}

int auth_file_ident(const char *path, struct file_ident *id)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	ident_from_stat(id, &st);
	return 0;
}

int auth_file_ident_equal(const struct file_ident *a, const struct file_ident *b)
{
	return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino &&
	       a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	       a->size == b->size;
}

int auth_file_exists(const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0)
		return 1;
	return errno != ENOENT && errno != ENOTDIR;
}
