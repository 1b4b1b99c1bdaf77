/*
 * progress: the status line of long uploads and of run mode's final flush.
 * See progress.h.
 *
 * p->lock guards everything but the rate samples (the thread's own). It
 * is held while the line is drawn, so that the thread and the uploader's
 * idle callback (a writer's lock held) agree on what is shown. Lock order:
 * a writer's, p->lock, the uploader's, the log's.
 */
#include "fs/progress.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/http.h"
#include "common/log.h"

/* The rate is taken over the last RATE_WINDOW_S seconds, from at least one. */
#define RATE_WINDOW_S 3
#define RATE_SAMPLES (RATE_WINDOW_S * PROGRESS_HZ + 1)
#define LINE_MAX_LEN 160

struct progress {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	int running;
	int stop;
	int ended;
	struct uploader *up;
	char *dest;
	int saving;
	double saving_since;      /* monotonic seconds */
	uint64_t files0, bytes0;  /* the uploader's totals when saving began */
	int shown;
	char line[LINE_MAX_LEN];
	double rate;              /* the last one measured */
	/* The thread's own. */
	struct {
		double t;
		uint64_t bytes;
	} samples[RATE_SAMPLES];
	int nsamples, next;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_size(uint64_t bytes, char *out, size_t len)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	if (bytes < 1024) {
		snprintf(out, len, "%u B", (unsigned)bytes);
		return;
	}
	double v = (double)bytes / 1024;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, "%.1f %s", v, units[u]);
}

void progress_text(const struct upload_totals *t, int saving, uint64_t files0, uint64_t bytes0,
		   double rate, char *out, size_t len)
{
	uint64_t files = t->files, done = t->done, total = t->bytes;
	if (saving) {
		/* What the final flush uploaded, and what the uploads under way still have to. */
		uint64_t since = t->bytes_done > bytes0 ? t->bytes_done - bytes0 : 0;
		files += t->files_done > files0 ? t->files_done - files0 : 0;
		done = since;
		total = since + (t->bytes > t->done ? t->bytes - t->done : 0);
	}
	char d[32], y[32], r[40] = "";
	progress_size(done, d, sizeof(d));
	progress_size(total, y, sizeof(y));
	if (rate >= 0) {
		char s[32];
		progress_size((uint64_t)rate, s, sizeof(s));
		snprintf(r, sizeof(r), ", %s/s", s);
	}
	snprintf(out, len, "%s%llu file%s, %s of %s%s", saving ? "saving outputs: " : "uploading ",
		 (unsigned long long)files, files == 1 ? "" : "s", d, y, r);
}

void progress_summary(const char *dest, uint64_t files, uint64_t bytes, double seconds,
		      char *out, size_t len)
{
	if (files == 0) {
		snprintf(out, len, "gcsmount: outputs saved to %s (all uploaded while the command ran)",
			 dest);
		return;
	}
	char b[32];
	progress_size(bytes, b, sizeof(b));
	snprintf(out, len, "gcsmount: outputs saved to %s: %llu file%s, %s uploaded in %.1f s after "
		 "the command ended", dest, (unsigned long long)files, files == 1 ? "" : "s", b,
		 seconds);
}

/* Bytes per second sent over the window, or -1 before a second has passed. */
static double sample_rate(struct progress *p, double now)
{
	uint64_t bytes = http_body_bytes_sent();
	p->samples[p->next].t = now;
	p->samples[p->next].bytes = bytes;
	p->next = (p->next + 1) % RATE_SAMPLES;
	if (p->nsamples < RATE_SAMPLES)
		p->nsamples++;
	/* The oldest sample is the one the next will replace, once the ring is full. */
	int oldest = p->nsamples < RATE_SAMPLES ? 0 : p->next;
	double dt = now - p->samples[oldest].t;
	if (dt < 1.0)
		return -1;
	return (double)(bytes - p->samples[oldest].bytes) / dt;
}

/* Lock held. sample: measure the rate (the thread), else use the last. */
static void tick(struct progress *p, int sample)
{
	double now = now_s();
	double rate = p->rate = sample ? sample_rate(p, now) : p->rate;
	struct upload_totals t;
	uploader_totals(p->up, &t);
	int show = t.files > 0 && (p->shown || (p->saving
						 ? now - p->saving_since >= PROGRESS_SAVING_AFTER_S
						 : t.longest >= PROGRESS_AFTER_S));
	if (!show) {
		if (p->shown)
			log_status_set(NULL);
		p->shown = 0;
		return;
	}
	char line[LINE_MAX_LEN];
	progress_text(&t, p->saving, p->files0, p->bytes0, rate, line, sizeof(line));
	if (!p->shown || strcmp(line, p->line) != 0) {
		log_status_set(line);
		memcpy(p->line, line, sizeof(line));
	}
	p->shown = 1;
}

/* The uploader's idle callback: no upload is sending. Remove the line now,
 * before the program that waited in close() writes to the terminal. During
 * the final flush no program is left: show what remains (or nothing). */
static void on_idle(void *arg)
{
	struct progress *p = arg;
	pthread_mutex_lock(&p->lock);
	if (p->shown && p->saving) {
		tick(p, 0);
	} else if (p->shown) {
		log_status_set(NULL);
		p->shown = 0;
	}
	pthread_mutex_unlock(&p->lock);
}

static void *run(void *arg)
{
	struct progress *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		long ns = until.tv_nsec + 1000000000L / PROGRESS_HZ;
		until.tv_sec += ns / 1000000000L;
		until.tv_nsec = ns % 1000000000L;
		pthread_cond_timedwait(&p->wake, &p->lock, &until);
		if (p->stop)
			break;
		tick(p, 1);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct progress *progress_new(int mode, int foreground, const char *dest)
{
	if (mode == 0 || !foreground || !log_status_open(mode == 1))
		return NULL;
	struct progress *p = xcalloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->dest = xstrdup(dest);
	p->rate = -1;
	return p;
}

int progress_start(struct progress *p, struct uploader *up)
{
	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	p->up = up;
	uploader_on_idle(up, on_idle, p);
	int rc = p->ended ? 0 : pthread_create(&p->thread, NULL, run, p);
	if (rc)
		log_warn("progress: cannot start a thread: %s", strerror(rc));
	p->running = !p->ended && rc == 0;
	pthread_mutex_unlock(&p->lock);
	return -rc;
}

void progress_saving(struct progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (!p->saving) {
		p->saving = 1;
		p->saving_since = now_s();
		if (p->up) {
			/* Before the start nothing was uploaded: the baselines stay 0. */
			struct upload_totals t;
			uploader_totals(p->up, &t);
			p->files0 = t.files_done;
			p->bytes0 = t.bytes_done;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

void progress_end(struct progress *p, int saved)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->ended) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	p->ended = 1;
	p->stop = 1;
	pthread_cond_signal(&p->wake);
	int running = p->running, saving = p->saving;
	uint64_t files0 = p->files0, bytes0 = p->bytes0;
	double since = p->saving_since;
	struct uploader *up = p->up;
	pthread_mutex_unlock(&p->lock);
	if (running)
		pthread_join(p->thread, NULL);
	if (up)
		uploader_on_idle(up, NULL, NULL);
	char summary[512];
	const char *last = NULL;
	if (saved && saving && up) {
		struct upload_totals t;
		uploader_totals(up, &t);
		progress_summary(p->dest, t.files_done - files0, t.bytes_done - bytes0,
				 now_s() - since, summary, sizeof(summary));
		last = summary;
	}
	log_status_close(last);
}

void progress_free(struct progress *p)
{
	if (!p)
		return;
	progress_end(p, 0);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	free(p->dest);
	free(p);
}
