/*
 * observe: the mount's gauges for the metrics registry, and the last error
 * of each file whose publish failed. See observe.h.
 *
 * errors_lock guards the error table; it is a leaf lock (nothing else is
 * taken while it is held), so observe_publish_failed() may be called with a
 * writer's lock held.
 */
#include "fs/observe.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/metrics.h"
#include "fs/fs.h"

#define MAX_ERRORS 64

static struct {
	char id[96];
	char msg[320];
	struct timespec when;
} errors[MAX_ERRORS];
static size_t nerrors;
static pthread_mutex_t errors_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t failures;   /* atomic */

static int before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

void observe_publish_failed(const char *spool_id, const char *msg)
{
	__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
	if (!spool_id || !spool_id[0])
		return;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&errors_lock);
	size_t slot = nerrors, oldest = 0;
	for (size_t k = 0; k < nerrors; k++) {
		if (strcmp(errors[k].id, spool_id) == 0) {
			slot = k;
			break;
		}
		if (before(&errors[k].when, &errors[oldest].when))
			oldest = k;
	}
	if (slot == nerrors) {
		if (nerrors < MAX_ERRORS)
			nerrors++;
		else
			slot = oldest; /* the table stays small: forget the oldest */
	}
	snprintf(errors[slot].id, sizeof(errors[slot].id), "%s", spool_id);
	snprintf(errors[slot].msg, sizeof(errors[slot].msg), "%s", msg ? msg : "failed");
	for (char *p = errors[slot].msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	errors[slot].when = now;
	pthread_mutex_unlock(&errors_lock);
}

int observe_last_error(const char *spool_id, const struct timespec *since, char *out,
		       size_t outlen)
{
	int rc = -1;
	pthread_mutex_lock(&errors_lock);
	for (size_t k = 0; k < nerrors; k++)
		if (strcmp(errors[k].id, spool_id) == 0) {
			if (!since || !before(&errors[k].when, since)) {
				snprintf(out, outlen, "%s", errors[k].msg);
				rc = 0;
			}
			break;
		}
	pthread_mutex_unlock(&errors_lock);
	return rc;
}

/* Disk used by the spool's data files (what they occupy, not their size). */
static void spool_usage(const char *dir, double *bytes, double *files)
{
	*bytes = *files = 0;
	DIR *d = dir ? opendir(dir) : NULL;
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len <= 5 || strcmp(de->d_name + len - 5, ".data") != 0)
			continue;
		struct stat sb;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
			*bytes += (double)sb.st_blocks * 512;
			*files += 1;
		}
	}
	closedir(d);
}

static void collect(void *arg, struct buf *out)
{
	struct fs *fs = arg;
	struct pending_list l;
	pending_collect(fs, &l);
	double uploading = 0, bytes = 0;
	for (size_t k = 0; k < l.n; k++) {
		bytes += (double)l.files[k].unpublished;
		if (strcmp(l.files[k].state, "uploading") == 0)
			uploading++;
	}
	metrics_put(out, "gcsmount_files_pending", METRICS_GAUGE,
		    "Files the bucket does not hold entirely: open with unpublished writes, or "
		    "left in the spool.", (double)l.n);
	metrics_put(out, "gcsmount_pending_bytes", METRICS_GAUGE,
		    "Bytes the next publishes of those files have to send.", bytes);
	metrics_put(out, "gcsmount_uploads_in_flight", METRICS_GAUGE,
		    "Files with an upload (a streamed chunk or a publish) in progress.", uploading);
	pending_free(&l);
	double sb, sf;
	spool_usage(fs->spool.dir, &sb, &sf);
	metrics_put(out, "gcsmount_spool_bytes", METRICS_GAUGE,
		    "Disk space used by the data files in the spool directory.", sb);
	metrics_put(out, "gcsmount_spool_files", METRICS_GAUGE,
		    "Data files in the spool directory.", sf);
	metrics_put(out, "gcsmount_write_buffer_pending_bytes", METRICS_GAUGE,
		    "Bytes written and not yet confirmed by the server, counted against "
		    "write_buffer.", (double)uploader_pending(&fs->uploader));
	if (fs->opts)
		metrics_put(out, "gcsmount_write_buffer_limit_bytes", METRICS_GAUGE,
			    "The write_buffer option.", (double)fs->opts->write_buffer);
	metrics_put(out, "gcsmount_publish_failures_total", METRICS_COUNTER,
		    "Publishes (close, fsync, background, recovery) that failed.",
		    (double)__atomic_load_n(&failures, __ATOMIC_RELAXED));
	metrics_put(out, "gcsmount_token_refreshes_total", METRICS_COUNTER,
		    "Access tokens fetched.", (double)gcs_client_token_refreshes(fs->gcs));
}

void fs_observe_register(struct fs *fs)
{
	metrics_add_collector(collect, fs);
}
