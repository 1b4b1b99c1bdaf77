/*
 * metrics: process-wide counters, latency histograms and gauges, served in
 * Prometheus' text exposition format on -o metrics=ADDR:PORT.
 *
 * The request path records each HTTP attempt with metrics_http_attempt():
 * atomic adds on fixed arrays, no lock. Requests are grouped by a kind (a
 * short word such as "read" or "upload"), given an index by metrics_kind()
 * the first time it is seen (up to METRICS_MAX_KINDS; a mutex guards only
 * that insertion). Nothing here knows what a kind means.
 *
 * Values that live elsewhere (files pending, spool usage, token refreshes)
 * come from collectors: callbacks registered with metrics_add_collector()
 * that, at each scrape, append their samples with metrics_put(). The
 * registry's mutex guards the collector list and is held while they run, so
 * a collector may take its own locks but must not call back into the
 * registry.
 *
 * The server (metrics_serve_*) is one thread answering GET /metrics, one
 * connection at a time; anything else gets 404.
 */
#ifndef GCSMOUNT_METRICS_H
#define GCSMOUNT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define METRICS_MAX_KINDS 32
/* Upper bounds of the latency buckets, in seconds; +Inf is implied. */
#define METRICS_NBUCKETS 15
extern const double metrics_bucket_bounds[METRICS_NBUCKETS];

/* The index of a kind (registered on first use; spaces become '_', names are
 * cut at 31 bytes), or -1 when the table is full. */
int metrics_kind(const char *kind);

/* An attempt begins (in-flight gauge) and ends. status: the HTTP status, or
 * 0 when no answer arrived. sent, received: body bytes. */
void metrics_http_begin(int kind);
void metrics_http_attempt(int kind, long status, double seconds, uint64_t sent,
			  uint64_t received);
/* The attempt that just ended will be retried. */
void metrics_http_retry(int kind);

/* The bucket an observation of `seconds` falls in; METRICS_NBUCKETS is +Inf. */
int metrics_bucket_index(double seconds);

enum metrics_type { METRICS_GAUGE, METRICS_COUNTER };

/* Called at each scrape to append samples to out with metrics_put(). */
typedef void (*metrics_collect_fn)(void *arg, struct buf *out);
void metrics_add_collector(metrics_collect_fn fn, void *arg);
/* Drop every collector (before what they read goes away). */
void metrics_clear_collectors(void);

/* One metric with a single unlabelled sample: # HELP, # TYPE, then the value.
 * A counter's name must end in _total. */
void metrics_put(struct buf *out, const char *name, enum metrics_type type, const char *help,
		 double value);

/* The whole exposition: built-in metrics, then every collector's. */
void metrics_render(struct buf *out);
/* Zero the built-in counters (unit tests). */
void metrics_reset(void);

/*
 * The HTTP endpoint. metrics_serve_bind() parses ADDR:PORT ("127.0.0.1:9100",
 * "[::1]:9100", ":9100" for every address) and listens, so that a bad
 * address or a port in use is an error before the mount; it starts no
 * thread (a daemon forks afterwards). metrics_serve_start() starts the
 * thread, binding first if that was not done. Both return 0, or -errno with
 * one line in err. metrics_serve_stop() stops the thread and closes the
 * socket; harmless when nothing was started.
 */
int metrics_serve_bind(const char *addr_port, char *err, size_t errlen);
int metrics_serve_start(const char *addr_port, char *err, size_t errlen);
void metrics_serve_stop(void);

#endif
