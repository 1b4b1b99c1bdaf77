/*
 * spool: entries on disk and their journals. See spool.h.
 */
#include "fs/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/log.h"

/* The n-th directory of a mount target (1: the first). */
static void sibling_path(struct buf *b, const char *base, int n)
{
	buf_reset(b);
	if (n == 1)
		buf_puts(b, base);
	else
		buf_printf(b, "%s-%d", base, n);
}

/* dir's lock, for as long as the process lives: its fd, or -EBUSY (held), or -errno. */
static int take_lock(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/*
 * The entries of a sibling directory no mount holds (left by a mount that
 * ran beside an earlier run of ours) move into s->dir, where this mount's
 * recovery finds them: data first, so a journal never names data that is
 * not beside it. A name taken in s->dir stays where it is.
 */
static void adopt(struct spool *s, const char *sibling)
{
	int lock = take_lock(sibling);
	if (lock < 0)
		return;
	DIR *d = opendir(sibling);
	int moved = 0;
	for (int pass = 0; d && pass < 2; pass++) {
		const char *ext = pass == 0 ? ".data" : ".journal";
		rewinddir(d);
		struct dirent *de;
		while ((de = readdir(d))) {
			size_t n = strlen(de->d_name), e = strlen(ext);
			if (n <= e || strcmp(de->d_name + n - e, ext) != 0)
				continue;
			char from[4096], to[4096];
			snprintf(from, sizeof(from), "%s/%s", sibling, de->d_name);
			snprintf(to, sizeof(to), "%s/%s", s->dir, de->d_name);
			if (link(from, to) == 0) {
				unlink(from);
				moved += pass;
			}
		}
	}
	if (d)
		closedir(d);
	if (moved)
		log_info("spool: took %d unfinished file(s) from %s, which no mount holds",
			 moved, sibling);
	char path[4096];
	snprintf(path, sizeof(path), "%s/lock", sibling);
	unlink(path);
	(void)rmdir(sibling); /* not empty: what could not move stays for a later mount */
	close(lock);
}

int spool_open(struct spool *s, const char *root, const char *key)
{
	memset(s, 0, sizeof(*s));
	s->lock_fd = -1;
	uint32_t h1 = crc32c_update(0, key, strlen(key));
	uint32_t h2 = crc32c_update(h1 ^ 0x5bd1e995u, key, strlen(key));
	struct buf base = BUF_INIT, b = BUF_INIT;
	buf_printf(&base, "%s/%08x%08x", root, h1, h2);
	int rc = -EBUSY, mine = 0;
	for (int n = 1; n <= SPOOL_SIBLINGS && rc == -EBUSY; n++) {
		sibling_path(&b, base.data, n);
		if (mkdir(b.data, 0700) < 0 && errno != EEXIST)
			rc = -errno;
		else if (chmod(b.data, 0700) < 0)
			rc = -errno;
		else if ((rc = take_lock(b.data)) >= 0)
			mine = n;
	}
	if (rc < 0) {
		buf_free(&base);
		buf_free(&b);
		return rc;
	}
	s->lock_fd = rc;
	s->dir = buf_detach(&b);
	if (mine > 1)
		log_info("spool: another mount of the same bucket and prefix holds %s; this one "
			 "uses %s", base.data, s->dir);
	struct stat st;
	for (int n = 1; n <= SPOOL_SIBLINGS; n++) {
		if (n == mine)
			continue;
		sibling_path(&b, base.data, n);
		if (stat(b.data, &st) == 0 && S_ISDIR(st.st_mode))
			adopt(s, b.data);
	}
	buf_free(&base);
	buf_free(&b);
	return 0;
}

void spool_close(struct spool *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
	free(s->dir);
	s->dir = NULL;
}

static void entry_path(const struct spool *s, const char *id, const char *ext, char *out,
		       size_t len)
{
	snprintf(out, len, "%s/%s.%s", s->dir, id, ext);
}

int spool_create(struct spool *s, char *id, size_t idlen, int *fd)
{
	char path[4096];
	for (int tries = 0; tries < 100; tries++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		unsigned long n = __atomic_add_fetch(&s->counter, 1, __ATOMIC_RELAXED);
		snprintf(id, idlen, "%lx-%lx-%d-%lu", (unsigned long)ts.tv_sec,
			 (unsigned long)ts.tv_nsec, (int)getpid(), n);
		entry_path(s, id, "data", path, sizeof(path));
		*fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (*fd >= 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

/*
 * The journal is "key value" lines. Values run to the end of their line:
 * object names cannot hold CR or LF (GCS refuses them) and neither can a
 * session URI, so no escaping is needed. Since version 2 the last line is
 * "end" and the CRC32C of the lines before it: the journal is rewritten in
 * place, so a shorter one leaves the end of a longer one behind it
 * (ignored), and a reader that catches a rewrite half done sees no end line
 * or a sum that does not match. Version 1 (no end line) is still read.
 */
char *spool_state_to_text(const struct spool_state *st)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "gcsmount-journal 2\nobject %s\nbase_gen %" PRId64 "\nbase_size %" PRIu64
		   "\nstaged %d\nsent %" PRIu64 "\nclosing %d\nsymlink %d\n",
		   st->object ? st->object : "", st->base_gen, st->base_size, !!st->staged, st->sent,
		   !!st->closing, !!st->symlink);
	if (st->conflict)
		buf_puts(&b, "conflict 1\n");
	if (st->session)
		buf_printf(&b, "session %s\nsession_object %s\n", st->session,
			   st->session_object ? st->session_object : "");
	if (st->mtime_sec || st->mtime_nsec)
		buf_printf(&b, "mtime %" PRId64 ".%09ld\n", st->mtime_sec, st->mtime_nsec);
	buf_printf(&b, "end %08x\n", crc32c_update(0, b.data, b.len));
	return buf_detach(&b);
}

static int parse_u64(const char *v, uint64_t *out)
{
	char *end;
	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = n;
	return 0;
}

static int parse_flag(const char *v, int *out)
{
	if (strcmp(v, "0") && strcmp(v, "1"))
		return -EINVAL;
	*out = v[0] == '1';
	return 0;
}

static int parse_line(struct spool_state *st, const char *key, const char *v)
{
	uint64_t n;
	int rc = 0;
	if (strcmp(key, "gcsmount-journal") == 0) {
		/* 1: an older version's, ended by its file; 2: ended by its end line. */
		if (strcmp(v, "1") == 0 || strcmp(v, "2") == 0)
			st->version = v[0] - '0';
		else
			rc = -EINVAL;
	} else if (strcmp(key, "object") == 0) {
		free(st->object);
		st->object = xstrdup(v);
	} else if (strcmp(key, "base_gen") == 0) {
		if ((rc = parse_u64(v, &n)) == 0)
			st->base_gen = (int64_t)n;
	} else if (strcmp(key, "base_size") == 0) {
		rc = parse_u64(v, &st->base_size);
	} else if (strcmp(key, "sent") == 0) {
		rc = parse_u64(v, &st->sent);
	} else if (strcmp(key, "staged") == 0) {
		rc = parse_flag(v, &st->staged);
	} else if (strcmp(key, "closing") == 0) {
		rc = parse_flag(v, &st->closing);
	} else if (strcmp(key, "symlink") == 0) {
		rc = parse_flag(v, &st->symlink);
	} else if (strcmp(key, "conflict") == 0) {
		rc = parse_flag(v, &st->conflict);
	} else if (strcmp(key, "session") == 0) {
		free(st->session);
		st->session = xstrdup(v);
	} else if (strcmp(key, "session_object") == 0) {
		free(st->session_object);
		st->session_object = xstrdup(v);
	} else if (strcmp(key, "mtime") == 0) {
		const char *dot = strchr(v, '.');
		uint64_t ns;
		char secs[32];
		if (!dot || (size_t)(dot - v) >= sizeof(secs) || strlen(dot + 1) != 9)
			return -EINVAL;
		memcpy(secs, v, (size_t)(dot - v));
		secs[dot - v] = '\0';
		if ((rc = parse_u64(secs, &n)) == 0 && (rc = parse_u64(dot + 1, &ns)) == 0) {
			st->mtime_sec = (int64_t)n;
			st->mtime_nsec = (long)ns;
		}
	}
	/* Unknown keys are from a newer version: ignored. */
	return rc;
}

/* 1: the line at p (nl its end) is the end line and sums text up to p; -EINVAL: it
 * is an end line that does not; 0: another line. */
static int end_line(const char *text, const char *p, const char *nl)
{
	if (nl - p != 12 || memcmp(p, "end ", 4) != 0)
		return 0;
	uint32_t want = 0;
	for (const char *h = p + 4; h < nl; h++) {
		int d = *h >= '0' && *h <= '9' ? *h - '0' : *h >= 'a' && *h <= 'f' ? *h - 'a' + 10 : -1;
		if (d < 0)
			return -EINVAL;
		want = want << 4 | (uint32_t)d;
	}
	return crc32c_update(0, text, (size_t)(p - text)) == want ? 1 : -EINVAL;
}

int spool_state_from_text(const char *text, size_t len, struct spool_state *st)
{
	memset(st, 0, sizeof(*st));
	int rc = 0, first = 1, ended = 0;
	const char *p = text, *end = text + len;
	while (p < end && rc == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			rc = -EINVAL; /* a journal always ends its lines */
			break;
		}
		int last = first || st->version != 2 ? 0 : end_line(text, p, nl);
		if (last) {
			rc = last < 0 ? last : 0;
			ended = 1;
			break;
		}
		char *line = xstrndup(p, (size_t)(nl - p));
		char *sp = strchr(line, ' ');
		/* A NUL inside the line would cut it short: not a journal. */
		if (!sp || strlen(line) != (size_t)(nl - p)) {
			rc = -EINVAL;
		} else {
			*sp = '\0';
			if (first && strcmp(line, "gcsmount-journal") != 0)
				rc = -EINVAL;
			else
				rc = parse_line(st, line, sp + 1);
		}
		first = 0;
		free(line);
		p = nl + 1;
	}
	if (rc == 0 && (first || !st->object || !st->object[0] ||
			(st->session && !st->session_object) || (st->version == 2 && !ended)))
		rc = -EINVAL;
	if (rc < 0)
		spool_state_clear(st);
	return rc;
}

void spool_state_clear(struct spool_state *st)
{
	free(st->object);
	free(st->session);
	free(st->session_object);
	memset(st, 0, sizeof(*st));
}

/*
 * Rewritten in place with one pwrite: a journal fits a page, and a write
 * within one page either happens whole or not at all when the process is
 * killed. Replacing it by rename instead cost about ten times as much on
 * ext4, which writes out a file renamed over another one (auto_da_alloc),
 * and a close publishes after two journal saves. A journal longer than a
 * page (names and session URIs near their limits) still goes by rename.
 */
#define JOURNAL_IN_PLACE 4096

/* Write text at the start of fd and close it. 0 or -errno. */
static int put_text(int fd, const char *text, size_t len)
{
	int rc = 0;
	ssize_t n = pwrite(fd, text, len, 0);
	if (n != (ssize_t)len)
		rc = n < 0 ? -errno : -ENOSPC;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

static int save_by_rename(const char *path, const char *text, size_t len)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = put_text(fd, text, len);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int save_in_place(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : put_text(fd, text, len);
}

int spool_save(const struct spool *s, const char *id, const struct spool_state *st)
{
	char path[4096];
	entry_path(s, id, "journal", path, sizeof(path));
	char *text = spool_state_to_text(st);
	size_t len = strlen(text);
	int rc = len <= JOURNAL_IN_PLACE ? save_in_place(path, text, len)
					 : save_by_rename(path, text, len);
	free(text);
	if (rc < 0)
		log_error("spool: cannot save the journal of %s: %s", st->object, strerror(-rc));
	return rc;
}

void spool_settle(int fd, uint64_t end)
{
	/* DONTNEED starts writeback of dirty pages in the range and drops the
	 * clean ones; a failure costs memory only. */
	if (end > 0)
		(void)posix_fadvise(fd, 0, (off_t)end, POSIX_FADV_DONTNEED);
}

void spool_remove(const struct spool *s, const char *id)
{
	char path[4096];
	entry_path(s, id, "journal", path, sizeof(path));
	unlink(path);
	entry_path(s, id, "data", path, sizeof(path));
	unlink(path);
}

int spool_scan(const struct spool *s,
	       void (*fn)(void *arg, const char *id, struct spool_state *st, int fd), void *arg)
{
	DIR *d = opendir(s->dir);
	if (!d)
		return -errno;
	int seen = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > 12 && strcmp(de->d_name + n - 12, ".journal.tmp") == 0) {
			/* A journal being replaced when the process died: the old one stands. */
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name);
			unlink(path);
			continue;
		}
		if (n < 9 || strcmp(de->d_name + n - 8, ".journal") != 0)
			continue;
		char id[256];
		if (n - 8 >= sizeof(id))
			continue;
		memcpy(id, de->d_name, n - 8);
		id[n - 8] = '\0';
		seen++;
		struct spool_state st;
		int fd;
		if (spool_load(s, id, &st, &fd) == 0)
			fn(arg, id, &st, fd);
	}
	closedir(d);
	return seen;
}

int spool_load(const struct spool *s, const char *id, struct spool_state *st, int *fd)
{
	char path[4096];
	entry_path(s, id, "journal", path, sizeof(path));
	struct buf text = BUF_INIT;
	int jfd = open(path, O_RDONLY | O_CLOEXEC);
	if (jfd < 0)
		return -errno;
	char block[4096];
	ssize_t r;
	while ((r = read(jfd, block, sizeof(block))) > 0)
		buf_append(&text, block, (size_t)r);
	close(jfd);
	if (!text.data || spool_state_from_text(text.data, text.len, st) < 0) {
		log_error("spool: %s: unreadable journal, left in place", path);
		buf_free(&text);
		return -EINVAL;
	}
	buf_free(&text);
	entry_path(s, id, "data", path, sizeof(path));
	*fd = open(path, O_RDWR | O_CLOEXEC);
	if (*fd < 0) {
		int rc = -errno;
		log_error("spool: %s: %s; the journal of %s is left in place", path, strerror(errno),
			  st->object);
		spool_state_clear(st);
		return rc;
	}
	return 0;
}
