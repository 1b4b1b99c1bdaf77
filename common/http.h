/*
 * http: every HTTP exchange of the mount goes through here, over libcurl.
 *
 * A pool of easy handles shares one CURLSH (DNS cache, TLS sessions and
 * connections), so a request borrows a warm, kept-alive connection and gives
 * the handle back when it is done. http_perform_many() runs several requests
 * at once on a multi handle (used where two look-ups are independent).
 *
 * A GET into req->out is received straight into that memory over a kept
 * connection libcurl opened (http_direct.c), unless a proxy is set in the
 * environment.
 *
 * Nothing here knows about GCS: status codes are returned as they came, and
 * transport failures as a negative errno. The caller owns req and resp; call
 * http_req_free()/http_resp_free() when done.
 */
#ifndef GCSMOUNT_HTTP_H
#define GCSMOUNT_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "buf.h"

struct http_req {
	const char *method;     /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *url;
	struct buf headers;     /* "Name: value\n" lines, added by http_req_header() */
	/* Request body: from memory (body, body_len) or, when body_fd >= 0,
	 * body_len bytes read from body_fd at body_off with pread(). */
	const void *body;
	size_t body_len;
	int body_fd;
	off_t body_off;
	/* Response body of a 2xx answer: when out != NULL, up to out_cap bytes
	 * are written there (extra bytes are an error); else into resp->body.
	 * A non-2xx body always goes to resp->body. */
	void *out;
	size_t out_cap;
	/* When set, told after each piece of a 2xx body lands in out, with
	 * the answer's status and the bytes in out so far. */
	void (*on_out)(void *arg, long status, size_t out_len);
	void *on_out_arg;
	long connect_timeout_ms;  /* 0: 10 s */
	long low_speed_secs;      /* abort below 1 KiB/s for this long; 0: 60 s */
};

struct http_resp {
	long status;            /* 0 when the transfer failed (not for an answer too long for out) */
	char err[256];          /* transport failure text, "" otherwise */
	struct buf body;
	size_t out_len;         /* bytes written into req->out */
	/* The response headers the layers above need ("" when absent). */
	char location[2048];
	char range[64];
	char content_range[96];
	char goog_hash[192];
	char content_type[128];
	char goog_generation[24];
};

/* Call once before any thread starts, and http_global_cleanup() at exit. */
int http_global_init(void);
void http_global_cleanup(void);

void http_req_init(struct http_req *req, const char *method, const char *url);
void http_req_header(struct http_req *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void http_req_free(struct http_req *req);
void http_resp_init(struct http_resp *resp);
void http_resp_free(struct http_resp *resp);

/*
 * Perform one request. Returns 0 when an answer arrived (any status, see
 * resp->status), or a negative errno for a transport failure:
 * -ECONNREFUSED, -EHOSTUNREACH (DNS or routing), -ETIMEDOUT, -ECONNRESET
 * (connection dropped or body cut short), -EMSGSIZE (body larger than
 * out_cap), -EIO (anything else); resp->err then says what happened.
 */
int http_perform(struct http_req *req, struct http_resp *resp);

/* Perform n requests concurrently; rcs[i] gets what http_perform would return. */
void http_perform_many(struct http_req **reqs, struct http_resp **resps, int *rcs, int n);

/* Percent-encode s for a URL path segment or query value: everything but
 * RFC 3986 unreserved characters is encoded (so '/' becomes %2F). */
void http_urlencode(struct buf *out, const char *s, size_t len);
/* Decode %XX escapes (and nothing else). Returns -EINVAL on a bad escape. */
int http_urldecode(struct buf *out, const char *s, size_t len);

/* True for transport failures worth retrying (reset, timeout, refused). */
int http_transport_retryable(int rc);

/*
 * From `at` on (CLOCK_MONOTONIC seconds), every transfer under way is cut
 * short (within about a second) and every new one fails at once, with
 * -ECANCELED and HTTP_ABANDONED_TEXT in resp->err: a shutdown's deadline.
 * What was not sent stays wherever its caller keeps it. 0 disarms.
 * Async-signal-safe.
 */
#define HTTP_ABANDONED_TEXT "abandoned at the shutdown deadline"
void http_abandon_at(double at);
/* Seconds until the abandon time: 0 once it has come, -1 when none is set. */
double http_abandon_left(void);
/* Whether it has come. */
int http_abandoned(void);

/* Request body bytes handed to libcurl since the start, every request and
 * attempt together (the rate of a progress line; an atomic counter). */
uint64_t http_body_bytes_sent(void);

#endif
