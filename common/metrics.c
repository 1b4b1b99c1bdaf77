/*
 * metrics: the counters, the histograms and the text exposition. See
 * metrics.h; the HTTP endpoint is in metrics_serve.c.
 *
 * Every counter is a uint64_t changed with relaxed __atomic adds: a scrape
 * may see one attempt's code counted and its bytes not yet, which
 * Prometheus tolerates; the histogram's _count is the sum of its buckets
 * as read, so the +Inf bucket always equals it.
 */
#include "common/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

const double metrics_bucket_bounds[METRICS_NBUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

/* Status slots: 0 no answer, 1..500 the codes 100..599, 501 anything else. */
#define SLOT_NONE 0
#define SLOT_OTHER 501
#define NSLOTS 502

struct kind_stats {
	uint64_t codes[NSLOTS];
	uint64_t buckets[METRICS_NBUCKETS + 1];  /* not cumulative; last is +Inf */
	uint64_t sum_ns;
	uint64_t retries;
	uint64_t sent;
	uint64_t received;
	int64_t in_flight;
};

#define KIND_NAME_MAX 32
#define MAX_COLLECTORS 16

static struct kind_stats stats[METRICS_MAX_KINDS];
static char kind_names[METRICS_MAX_KINDS][KIND_NAME_MAX];
static int nkinds;                    /* published with release, read with acquire */
static pthread_mutex_t kinds_lock = PTHREAD_MUTEX_INITIALIZER;  /* insertion only */

static struct {
	metrics_collect_fn fn;
	void *arg;
} collectors[MAX_COLLECTORS];
static int ncollectors;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;    /* collectors, ncollectors */

static int find_kind(const char *kind, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(kind_names[i], kind) == 0)
			return i;
	return -1;
}

int metrics_kind(const char *what)
{
	/* Label values read better without spaces: "upload start" -> upload_start. */
	char kind[KIND_NAME_MAX];
	snprintf(kind, sizeof(kind), "%s", what);
	for (char *p = kind; *p; p++)
		if (*p == ' ')
			*p = '_';
	int k = find_kind(kind, __atomic_load_n(&nkinds, __ATOMIC_ACQUIRE));
	if (k >= 0)
		return k;
	pthread_mutex_lock(&kinds_lock);
	int n = nkinds;
	k = find_kind(kind, n);
	if (k < 0 && n < METRICS_MAX_KINDS) {
		snprintf(kind_names[n], KIND_NAME_MAX, "%s", kind);
		__atomic_store_n(&nkinds, n + 1, __ATOMIC_RELEASE);
		k = n;
	}
	pthread_mutex_unlock(&kinds_lock);
	return k;
}

static void add(uint64_t *p, uint64_t n)
{
	__atomic_add_fetch(p, n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void metrics_http_begin(int kind)
{
	if (kind >= 0)
		__atomic_add_fetch(&stats[kind].in_flight, 1, __ATOMIC_RELAXED);
}

int metrics_bucket_index(double seconds)
{
	for (int i = 0; i < METRICS_NBUCKETS; i++)
		if (seconds <= metrics_bucket_bounds[i])
			return i;
	return METRICS_NBUCKETS;
}

void metrics_http_attempt(int kind, long status, double seconds, uint64_t sent,
			  uint64_t received)
{
	if (kind < 0)
		return;
	struct kind_stats *s = &stats[kind];
	__atomic_sub_fetch(&s->in_flight, 1, __ATOMIC_RELAXED);
	int slot = status == 0 ? SLOT_NONE
		   : status >= 100 && status <= 599 ? (int)(status - 99) : SLOT_OTHER;
	add(&s->codes[slot], 1);
	if (seconds < 0 || isnan(seconds))
		seconds = 0;
	add(&s->buckets[metrics_bucket_index(seconds)], 1);
	add(&s->sum_ns, seconds > 1e9 ? (uint64_t)1e18 : (uint64_t)(seconds * 1e9));
	if (sent)
		add(&s->sent, sent);
	if (received)
		add(&s->received, received);
}

void metrics_http_retry(int kind)
{
	if (kind >= 0)
		add(&stats[kind].retries, 1);
}

void metrics_add_collector(metrics_collect_fn fn, void *arg)
{
	pthread_mutex_lock(&reg_lock);
	if (ncollectors < MAX_COLLECTORS) {
		collectors[ncollectors].fn = fn;
		collectors[ncollectors].arg = arg;
		ncollectors++;
	}
	pthread_mutex_unlock(&reg_lock);
}

void metrics_clear_collectors(void)
{
	pthread_mutex_lock(&reg_lock);
	ncollectors = 0;
	pthread_mutex_unlock(&reg_lock);
}

void metrics_reset(void)
{
	pthread_mutex_lock(&kinds_lock);
	memset(stats, 0, sizeof(stats));
	pthread_mutex_unlock(&kinds_lock);
}

/* A label value: backslash, double quote and newline escaped. */
static void put_label(struct buf *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_putc(out, '\\');
		if (*v == '\n') {
			buf_puts(out, "\\n");
			continue;
		}
		buf_putc(out, *v);
	}
}

/* HELP text: backslash and newline escaped. */
static void put_help(struct buf *out, const char *name, const char *type, const char *help)
{
	buf_printf(out, "# HELP %s ", name);
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			buf_puts(out, "\\\\");
		else if (*p == '\n')
			buf_puts(out, "\\n");
		else
			buf_putc(out, *p);
	}
	buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

static void put_value(struct buf *out, double v)
{
	if (isnan(v))
		buf_puts(out, "NaN");
	else if (isinf(v))
		buf_puts(out, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		buf_printf(out, "%.0f", v);
	else
		buf_printf(out, "%.17g", v);
}

void metrics_put(struct buf *out, const char *name, enum metrics_type type, const char *help,
		 double value)
{
	put_help(out, name, type == METRICS_COUNTER ? "counter" : "gauge", help);
	buf_printf(out, "%s ", name);
	put_value(out, value);
	buf_putc(out, '\n');
}

static void sample_start(struct buf *out, const char *name, int kind)
{
	buf_printf(out, "%s{kind=\"", name);
	put_label(out, kind_names[kind]);
	buf_putc(out, '"');
}

static void render_codes(struct buf *out, int n)
{
	put_help(out, "gcsmount_http_requests_total", "counter",
		 "HTTP requests to the storage API, every attempt, by kind and status code "
		 "(code \"error\": no answer arrived).");
	for (int k = 0; k < n; k++)
		for (int slot = 0; slot < NSLOTS; slot++) {
			uint64_t v = get(&stats[k].codes[slot]);
			if (!v)
				continue;
			sample_start(out, "gcsmount_http_requests_total", k);
			if (slot == SLOT_NONE)
				buf_puts(out, ",code=\"error\"");
			else if (slot == SLOT_OTHER)
				buf_puts(out, ",code=\"other\"");
			else
				buf_printf(out, ",code=\"%d\"", slot + 99);
			buf_printf(out, "} %" PRIu64 "\n", v);
		}
}

enum field { F_RETRIES, F_SENT, F_RECEIVED, F_IN_FLIGHT };

static int64_t field_value(struct kind_stats *s, enum field f)
{
	switch (f) {
	case F_RETRIES:
		return (int64_t)get(&s->retries);
	case F_SENT:
		return (int64_t)get(&s->sent);
	case F_RECEIVED:
		return (int64_t)get(&s->received);
	case F_IN_FLIGHT:
		break;
	}
	int64_t v = __atomic_load_n(&s->in_flight, __ATOMIC_RELAXED);
	return v < 0 ? 0 : v;
}

/* One counter or gauge family with a sample per kind. */
static void render_per_kind(struct buf *out, int n, const char *name, const char *type,
			    const char *help, enum field f)
{
	put_help(out, name, type, help);
	for (int k = 0; k < n; k++) {
		sample_start(out, name, k);
		buf_printf(out, "} %" PRId64 "\n", field_value(&stats[k], f));
	}
}

static void render_histograms(struct buf *out, int n)
{
	const char *name = "gcsmount_http_request_duration_seconds";
	put_help(out, name, "histogram",
		 "Time from sending a request to the end of its answer, every attempt, by kind.");
	for (int k = 0; k < n; k++) {
		uint64_t cum = 0;
		for (int b = 0; b <= METRICS_NBUCKETS; b++) {
			cum += get(&stats[k].buckets[b]);
			sample_start(out, "gcsmount_http_request_duration_seconds_bucket", k);
			if (b < METRICS_NBUCKETS)
				buf_printf(out, ",le=\"%g\"} %" PRIu64 "\n", metrics_bucket_bounds[b], cum);
			else
				buf_printf(out, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
		}
		sample_start(out, "gcsmount_http_request_duration_seconds_sum", k);
		buf_printf(out, "} %.9f\n", (double)get(&stats[k].sum_ns) / 1e9);
		sample_start(out, "gcsmount_http_request_duration_seconds_count", k);
		buf_printf(out, "} %" PRIu64 "\n", cum);
	}
}

void metrics_render(struct buf *out)
{
	int n = __atomic_load_n(&nkinds, __ATOMIC_ACQUIRE);
	if (!out->data)
		buf_puts(out, "");
	render_codes(out, n);
	render_per_kind(out, n, "gcsmount_http_retries_total", "counter",
			"Attempts that failed and were tried again, by kind.",
			F_RETRIES);
	render_per_kind(out, n, "gcsmount_http_sent_bytes_total", "counter",
			"Request body bytes sent (uploads), every attempt, by kind.",
			F_SENT);
	render_per_kind(out, n, "gcsmount_http_received_bytes_total", "counter",
			"Response body bytes received (downloads, JSON answers), by kind.",
			F_RECEIVED);
	render_per_kind(out, n, "gcsmount_http_requests_in_flight", "gauge",
			"Requests sent and not yet answered, by kind.",
			F_IN_FLIGHT);
	render_histograms(out, n);
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < ncollectors; i++)
		collectors[i].fn(collectors[i].arg, out);
	pthread_mutex_unlock(&reg_lock);
}
