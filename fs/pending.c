/*
 * pending: the files the bucket does not hold entirely yet, for the status
 * attribute and the metrics. See observe.h for the locking.
 *
 * The spool is listed before the open writers are: an entry whose writer
 * closed in between has either gone (published: skipped) or stayed (its
 * upload failed: reported as spooled), so no file is missed or counted
 * twice.
 */
#include "fs/observe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/fs.h"
#include "fs/spool.h"
#include "fs/writer.h"

#define JOURNAL_MAX (1u << 20)

static double seconds_since(const struct timespec *t, const struct timespec *now)
{
	double s = (double)(now->tv_sec - t->tv_sec) + (double)(now->tv_nsec - t->tv_nsec) / 1e9;
	return s < 0 ? 0 : s;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* IDs of the spool entries that have a journal, sorted. */
static char **spool_ids(const char *dir, size_t *n)
{
	*n = 0;
	char **ids = NULL;
	size_t cap = 0;
	DIR *d = dir ? opendir(dir) : NULL;
	if (!d)
		return NULL;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len <= 8 || strcmp(de->d_name + len - 8, ".journal") != 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			ids = xrealloc(ids, cap * sizeof(*ids));
		}
		ids[(*n)++] = xstrndup(de->d_name, len - 8);
	}
	closedir(d);
	if (*n)
		qsort(ids, *n, sizeof(*ids), cmp_str);
	return ids;
}


/* The object's path under the mount. */
static char *rel_path(struct fs *fs, const char *object)
{
	size_t pl = fs->prefix ? strlen(fs->prefix) : 0;
	if (object && pl && strncmp(object, fs->prefix, pl) == 0)
		object += pl;
	return xstrdup(object ? object : "?");
}

/* An entry's journal, and when it was last written. 0 or -errno. */
static int read_journal_once(const char *dir, const char *id, struct spool_state *st,
			     struct timespec *mtime)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.journal", dir, id);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat sb;
	int rc = fstat(fd, &sb) < 0 ? -errno : 0;
	if (rc == 0 && (sb.st_size <= 0 || (uint64_t)sb.st_size > JOURNAL_MAX))
		rc = -EINVAL;
	char *text = NULL;
	if (rc == 0) {
		text = xmalloc((size_t)sb.st_size);
		ssize_t got = pread(fd, text, (size_t)sb.st_size, 0);
		rc = got == sb.st_size ? 0 : -EIO;
	}
	close(fd);
	if (rc == 0) {
		memset(st, 0, sizeof(*st));
		rc = spool_state_from_text(text, (size_t)sb.st_size, st);
		*mtime = sb.st_mtim;
	}
	free(text);
	return rc;
}

/* The writer may be rewriting it as it is read: a journal seen half written
 * reads as invalid, and the next look finds it whole. */
static int read_journal(const char *dir, const char *id, struct spool_state *st,
			struct timespec *mtime)
{
	int rc = read_journal_once(dir, id, st, mtime);
	return rc == -EINVAL ? read_journal_once(dir, id, st, mtime) : rc;
}

static uint64_t unpublished(uint64_t size, uint64_t base_size, int staged)
{
	if (staged)
		return size;
	return size > base_size ? size - base_size : 0;
}

/*
 * An entry known only by its journal: a writer busy uploading, or a spooled
 * one. 1 when f was filled. spooled: skip an entry whose journal says the
 * object holds every byte (a writer closed cleanly and not yet removed).
 */
static int from_journal(struct fs *fs, const char *id, const struct timespec *now,
			int spooled, struct pending_file *f)
{
	struct spool_state st;
	struct timespec mtime = {0, 0};
	if (read_journal(fs->spool.dir, id, &st, &mtime) < 0)
		return 0;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.data", fs->spool.dir, id);
	struct stat sb;
	f->size = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
	if (spooled && !st.staged && !st.closing && st.base_gen != 0 && f->size <= st.base_size) {
		spool_state_clear(&st);
		return 0;
	}
	f->path = rel_path(fs, st.object);
	snprintf(f->id, sizeof(f->id), "%s", id);
	f->unpublished = unpublished(f->size, st.base_size, st.staged);
	f->age = seconds_since(&mtime, now);
	f->state = st.conflict ? "conflict" : "spooled";
	spool_state_clear(&st);
	return 1;
}

/* 1 when w has bytes to publish (f filled), else 0. */
static int from_writer(struct fs *fs, struct writer *w, const struct timespec *now,
		       struct pending_file *f)
{
	struct timespec until = *now;
	until.tv_nsec += WRITER_LOCK_WAIT_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	if (pthread_mutex_timedlock(&w->lock, &until) != 0) {
		/* Held this long only by an upload in progress. */
		if (!from_journal(fs, w->id, now, 0, f))
			return 0;
		f->size = writer_size(w);
		f->state = "uploading";
		return 1;
	}
	if (!w->dirty || w->unlinked) {
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	f->path = rel_path(fs, w->object);
	snprintf(f->id, sizeof(f->id), "%s", w->id);
	f->size = writer_size(w);
	f->unpublished = unpublished(f->size, w->base_size, w->mode == WRITER_STAGED);
	f->age = seconds_since(&w->published, now);
	int held = __atomic_load_n(&w->held, __ATOMIC_RELAXED);
	f->state = w->conflict ? "conflict" : w->failed ? "failed" : held && !w->busy ? "retrying"
		 : w->busy || w->closing ? "uploading" : "open";
	struct timespec published = w->published;
	pthread_mutex_unlock(&w->lock);
	char msg[320];
	if (observe_last_error(f->id, &published, msg, sizeof(msg)) == 0)
		f->error = xstrdup(msg);
	return 1;
}

static struct pending_file *next_slot(struct pending_list *l, size_t *cap)
{
	if (l->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		l->files = xrealloc(l->files, *cap * sizeof(*l->files));
	}
	struct pending_file *f = &l->files[l->n];
	memset(f, 0, sizeof(*f));
	return f;
}

static int cmp_file(const void *a, const void *b)
{
	const struct pending_file *x = a, *y = b;
	return strcmp(x->path, y->path);
}

void pending_collect(struct fs *fs, struct pending_list *out)
{
	out->files = NULL;
	out->n = 0;
	size_t cap = 0;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	size_t nids, nws;
	char **ids = spool_ids(fs->spool.dir, &nids);
	struct writer **ws = fs_open_writers(fs, &nws);
	char **live = nws ? xmalloc(nws * sizeof(*live)) : NULL;
	for (size_t k = 0; k < nws; k++) {
		live[k] = ws[k]->id;
		if (from_writer(fs, ws[k], &now, next_slot(out, &cap)))
			out->n++;
	}
	if (nws)
		qsort(live, nws, sizeof(*live), cmp_str);
	for (size_t k = 0; k < nids; k++) {
		if (nws && bsearch(&ids[k], live, nws, sizeof(*live), cmp_str))
			continue;
		struct pending_file *f = next_slot(out, &cap);
		if (!from_journal(fs, ids[k], &now, 1, f))
			continue;
		char msg[320];
		if (observe_last_error(f->id, NULL, msg, sizeof(msg)) == 0)
			f->error = xstrdup(msg);
		out->n++;
	}
	/* Last: dropping a reference may free a writer that closed meanwhile. */
	for (size_t k = 0; k < nws; k++)
		writer_unref(ws[k]);
	free(ws);
	free(live);
	for (size_t k = 0; k < nids; k++)
		free(ids[k]);
	free(ids);
	if (out->n > 1)
		qsort(out->files, out->n, sizeof(*out->files), cmp_file);
}

void pending_free(struct pending_list *l)
{
	for (size_t k = 0; k < l->n; k++) {
		free(l->files[k].path);
		free(l->files[k].error);
	}
	free(l->files);
	l->files = NULL;
	l->n = 0;
}
