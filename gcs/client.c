/*
 * client: the one request path. Adds the token, retries what may be
 * retried, turns the final answer into an errno and a line of text.
 *
 * Retry policy (as Google's client libraries): 408, 429, 5xx and transport
 * failures, for idempotent requests, with full-jitter exponential backoff
 * from 100 ms doubling to 30 s, until the retry deadline: the last try is
 * made at the deadline itself (a backoff reaching past it is cut short to
 * it), so a request gives up about retry_deadline seconds after its first
 * try, whatever the jitter drew. A 401 refreshes the
 * token once and repeats the request whatever its idempotency: a 401 means
 * the server did nothing.
 */
#include "gcs/client_internal.h"
#include "gcs/json_arena.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "common/log.h"
#include "common/metrics.h"

/* url without the user:password@ of its authority: what a log line may carry. */
static char *shown_url(const char *url)
{
	const char *auth = strstr(url, "://");
	auth = auth ? auth + 3 : url;
	size_t alen = strcspn(auth, "/?#");
	const char *at = memchr(auth, '@', alen);
	if (!at)
		return xstrdup(url);
	struct buf b = BUF_INIT;
	buf_append(&b, url, (size_t)(auth - url));
	buf_puts(&b, at + 1);
	return buf_detach(&b);
}

struct gcs_client *gcs_client_new(const struct gcs_config *cfg)
{
	gcs_json_init();
	struct gcs_client *c = xcalloc(1, sizeof(*c));
	const char *ep = cfg->endpoint;
	size_t n = strlen(ep);
	while (n && ep[n - 1] == '/')
		n--;
	c->endpoint = xstrndup(ep, n);
	c->endpoint_shown = shown_url(c->endpoint);
	c->bucket = xstrdup(cfg->bucket);
	struct buf b = BUF_INIT;
	http_urlencode(&b, c->bucket, strlen(c->bucket));
	c->bucket_enc = buf_detach(&b);
	c->auth = cfg->auth;
	c->retry_deadline = cfg->retry_deadline > 0 ? cfg->retry_deadline : 120;
	return c;
}

void gcs_client_free(struct gcs_client *c)
{
	if (!c)
		return;
	free(c->endpoint);
	free(c->endpoint_shown);
	free(c->bucket);
	free(c->bucket_enc);
	free(c);
}

void gcs_client_set_retry_deadline(struct gcs_client *c, double seconds)
{
	c->retry_deadline = seconds;
}

const char *gcs_client_bucket(const struct gcs_client *c)
{
	return c->bucket;
}

void gcs_error_set(struct gcs_error *e, int http, int err, const char *fmt, ...)
{
	if (!e)
		return;
	e->http = http;
	e->err = err;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

void gcs_object_url(struct gcs_client *c, struct buf *url, const char *base, const char *name)
{
	buf_reset(url);
	buf_printf(url, "%s%s/b/%s/o/", c->endpoint, base, c->bucket_enc);
	http_urlencode(url, name, strlen(name));
}

int gcs_status_retryable(long s)
{
	return s == 408 || s == 429 || (s >= 500 && s <= 599);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Full jitter needs a cheap per-thread random number, not rand()'s shared state. */
static double jitter(void)
{
	static __thread uint64_t x;
	if (!x)
		x = (uint64_t)(uintptr_t)&x ^ (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return (double)(x >> 11) / (double)(1ull << 53);
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void gcs_retry_begin(struct gcs_retry *r)
{
	r->start = now_s();
	r->backoff = 0.1;
	r->last = 0;
}

int gcs_retry_wait(const struct gcs_client *c, struct gcs_retry *r)
{
	double left = c->retry_deadline - (now_s() - r->start);
	double abandon = http_abandon_left();
	if (r->last || left <= 0 || abandon == 0)
		return 0;
	double delay = r->backoff * jitter();
	if (delay >= left) {
		delay = left;
		r->last = 1;
	}
	/* No sleeping past a shutdown's deadline: the try then fails at once. */
	if (abandon > 0 && delay > abandon)
		delay = abandon;
	sleep_s(delay);
	r->backoff = r->backoff * 2 > 30 ? 30 : r->backoff * 2;
	return 1;
}

/* The Authorization line is the last header; it is replaced on each try. */
int gcs_add_auth(struct gcs_client *c, struct http_req *req, size_t base_len,
		 char *hdr, size_t hdrlen, struct gcs_error *e)
{
	req->headers.len = base_len;
	if (req->headers.data)
		req->headers.data[base_len] = '\0';
	hdr[0] = '\0';
	if (!c->auth)
		return 0;
	char err[256] = "";
	int rc = auth_header(c->auth, hdr, hdrlen, err, sizeof(err));
	if (rc < 0) {
		gcs_error_set(e, 0, rc, "credentials: %s", err);
		return rc;
	}
	if (hdr[0])
		http_req_header(req, "%s", hdr);
	return 0;
}

int gcs_call(struct gcs_client *c, struct http_req *req, struct http_resp *resp,
	     enum gcs_idem idem, long ok_extra, const char *what, const char *name,
	     struct gcs_error *e)
{
	size_t base_len = req->headers.len;
	char hdr[4096];
	struct gcs_retry pace;
	gcs_retry_begin(&pace);
	int refreshed = 0;
	int kind = metrics_kind(what);
	for (;;) {
		int rc = gcs_add_auth(c, req, base_len, hdr, sizeof(hdr), e);
		if (rc < 0)
			return rc;
		metrics_http_begin(kind);
		double sent_at = now_s();
		rc = http_perform(req, resp);
		/* Bytes sent are counted when an answer arrived (the body went out). */
		metrics_http_attempt(kind, rc == 0 ? resp->status : 0, now_s() - sent_at,
				     rc == 0 ? req->body_len : 0, resp->body.len + resp->out_len);
		long s = resp->status;
		if (rc == 0 && ((s >= 200 && s < 300) || (ok_extra && s == ok_extra)))
			return 0;
		if (rc == 0 && s == 401 && !refreshed && c->auth) {
			refreshed = 1;
			auth_invalidate(c->auth, hdr);
			metrics_http_retry(kind);
			log_info("%s %s: 401 from server, refreshing the token once", what, name);
			continue;
		}
		if (rc < 0 && req->out && resp->out_len > 0) {
			/* A body cut short: the caller continues from the byte it
			 * stopped at instead of fetching it all again. */
			gcs_error_set(e, 0, rc, "%s %s: %s after %zu bytes", what, name, resp->err,
				      resp->out_len);
			return rc;
		}
		int retry = idem == GCS_IDEMPOTENT &&
			    (rc == 0 ? gcs_status_retryable(s) : http_transport_retryable(rc));
		if (retry && gcs_retry_wait(c, &pace)) {
			if (rc == 0)
				log_info("%s %s: HTTP %ld, retrying", what, name, s);
			else
				log_info("%s %s: %s, retrying", what, name, resp->err);
			metrics_http_retry(kind);
			continue;
		}
		if (rc == -ECANCELED) {
			gcs_error_set(e, 0, rc, "%s %s: %s", what, name, resp->err);
			return rc;
		}
		if (rc < 0) {
			gcs_error_set(e, 0, rc, "%s %s: cannot reach %s: %s", what, name,
				      c->endpoint_shown, resp->err);
			return rc;
		}
		char msg[200], note[256] = "";
		gcs_error_parse(resp->body.data, resp->body.len, msg, sizeof(msg));
		if (s == 401 && c->auth)
			auth_refusal_note(c->auth, note, sizeof(note));
		int err = gcs_errno_for_status(s);
		gcs_error_set(e, (int)s, err, "%s %s: HTTP %ld%s%s%s%s", what, name, s,
			      msg[0] ? ": " : "", msg, note[0] ? "; " : "", note);
		return err;
	}
}
