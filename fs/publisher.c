/*
 * publisher: the thread, and periodic publishing of long-open files; the
 * retries it runs are in retry.c. See publisher.h.
 */
#include "fs/publisher.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/log.h"
#include "fs/fs.h"

static void publish_open_files(struct publisher *p)
{
	size_t n;
	struct writer **ws = fs_open_writers(p->fs, &n);
	for (size_t k = 0; k < n; k++) {
		struct gcs_object obj;
		struct gcs_error e = {0};
		if (writer_publish_due(ws[k], p->interval, &obj, &e) < 0)
			log_error("publish: %s", e.msg);
		else if (obj.name)
			log_debug("published %s at %llu bytes", obj.name,
				  (unsigned long long)obj.size);
		gcs_object_clear(&obj);
		writer_unref(ws[k]);
	}
	free(ws);
}

static void *run(void *arg)
{
	struct publisher *p = arg;
	/* Look often enough that a file is published close to its interval. */
	double tick = p->interval > 0 && p->interval / 4 < 1 ? p->interval / 4 : 1;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		long ns = until.tv_nsec + (long)(tick * 1e9);
		until.tv_sec += ns / 1000000000L;
		until.tv_nsec = ns % 1000000000L;
		pthread_cond_timedwait(&p->wake, &p->lock, &until);
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->lock);
		if (p->interval > 0)
			publish_open_files(p);
		publisher_retry_due(p);
		publisher_retry_entries(p, 0);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int publisher_start(struct publisher *p, struct fs *fs, double interval,
		    double retry_deadline)
{
	memset(p, 0, sizeof(*p));
	p->fs = fs;
	p->interval = interval;
	p->first_retry = retry_deadline < RETRY_FIRST ? retry_deadline : RETRY_FIRST;
	if (p->first_retry < 1)
		p->first_retry = 1;
	/* A held file keeps its spool file open: a quarter of the open-file
	 * limit at most, so that programs can still open theirs. */
	struct rlimit nofile;
	p->held_max = HELD_MAX;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
	    nofile.rlim_cur / 4 < (rlim_t)p->held_max)
		p->held_max = (int)(nofile.rlim_cur / 4);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	int rc = pthread_create(&p->thread, NULL, run, p);
	if (rc) {
		log_error("publisher: cannot start: %s", strerror(rc));
		return -rc;
	}
	p->running = 1;
	__atomic_store_n(&p->holding, 1, __ATOMIC_RELEASE);
	return 0;
}

void publisher_stop(struct publisher *p)
{
	__atomic_store_n(&p->holding, 0, __ATOMIC_RELEASE);
	if (!p->running)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	p->running = 0;
}
