/*
 * http_direct: a GET whose 2xx body is received straight into the caller's
 * memory.
 *
 * libcurl hands a body over through a write callback, so every byte is
 * copied once more after the kernel's copy out of the socket; for a
 * sequential read of a large object that copy was a fifth of the mount's
 * CPU. Here libcurl only opens the connection (CONNECT_ONLY: DNS, TCP, TLS
 * with HTTP/1.1 offered, the DNS cache and TLS sessions shared with every
 * other handle) and the HTTP/1.1 exchange is written and read over it with
 * curl_easy_send and curl_easy_recv, the body's bytes received into
 * req->out (http_answer.c reads the answer). Connections are kept alive in a pool of their own; one the
 * server closed while it sat there is opened again, once, when it fails
 * before any byte of the answer.
 *
 * Used for GETs into req->out when no proxy is set in the environment (a
 * proxy is libcurl's to speak to); everything else goes through libcurl's
 * transfer as before.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "http_internal.h"
#include "log.h"

#define DPOOL_MAX 32
#define RECV_MAX (512L * 1024)     /* the most one receive asks for */
#define DCONN_MAX_IDLE 100.0      /* seconds a kept connection may sit unused */

struct dconn {
	struct http_source src;     /* first: recv_some finds the rest from it */
	CURL *h;
	curl_socket_t fd;
	char origin[320];           /* scheme://authority it is connected to */
	char errbuf[CURL_ERROR_SIZE];
	double idle_since;          /* when it last went back to the pool */
	/* This exchange's low-speed rule: under 1 KiB/s for low_speed_secs is
	 * a timeout, measured in windows of that length. */
	long low_speed_secs;
	double win_start;
	size_t win_bytes;
};

static pthread_mutex_t dpool_lock = PTHREAD_MUTEX_INITIALIZER; /* guards dpool, ndpool */
static struct dconn *dpool[DPOOL_MAX];
static int ndpool;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int proxy_in_env(void)
{
	static const char *const vars[] = { "http_proxy", "HTTP_PROXY", "https_proxy",
					    "HTTPS_PROXY", "all_proxy", "ALL_PROXY" };
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);
		if (v && *v)
			return 1;
	}
	return 0;
}

/* "scheme://authority" of url into origin, and where its path starts; -1 if
 * it is not a plain http(s) URL with a path. */
static int split_url(const char *url, char *origin, size_t cap, const char **target)
{
	size_t skip;
	if (strncmp(url, "http://", 7) == 0)
		skip = 7;
	else if (strncmp(url, "https://", 8) == 0)
		skip = 8;
	else
		return -1;
	const char *slash = strchr(url + skip, '/');
	if (!slash || slash == url + skip)
		return -1;
	size_t olen = (size_t)(slash - url);
	const char *auth = url + skip;
	if (olen >= cap || memchr(auth, '@', (size_t)(slash - auth)) ||
	    memchr(auth, '?', (size_t)(slash - auth)) || strchr(slash, '#'))
		return -1;
	memcpy(origin, url, olen);
	origin[olen] = '\0';
	*target = slash;
	return 0;
}

int http_direct_usable(const struct http_req *req)
{
	if (!req->out || strcmp(req->method, "GET") != 0)
		return 0;
	if (proxy_in_env())
		return 0;
	char origin[sizeof(((struct dconn *)0)->origin)];
	const char *target;
	return split_url(req->url, origin, sizeof(origin), &target) == 0;
}

static void dconn_close(struct dconn *c)
{
	if (!c)
		return;
	if (c->h)
		curl_easy_cleanup(c->h);
	free(c);
}

/*
 * A kept connection to origin that still looks open, or NULL. One idle for
 * longer than DCONN_MAX_IDLE (servers and NATs drop those), or with bytes
 * or its end waiting (the server closed it, or sent what nobody asked
 * for), is closed instead.
 */
static struct dconn *dpool_take(const char *origin)
{
	for (;;) {
		struct dconn *c = NULL;
		pthread_mutex_lock(&dpool_lock);
		for (int i = ndpool - 1; i >= 0; i--)
			if (strcmp(dpool[i]->origin, origin) == 0) {
				c = dpool[i];
				dpool[i] = dpool[--ndpool];
				break;
			}
		pthread_mutex_unlock(&dpool_lock);
		if (!c)
			return NULL;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (now_s() - c->idle_since <= DCONN_MAX_IDLE && poll(&p, 1, 0) == 0)
			return c;
		dconn_close(c);
	}
}

static void dpool_put(struct dconn *c)
{
	c->idle_since = now_s();
	pthread_mutex_lock(&dpool_lock);
	if (ndpool < DPOOL_MAX) {
		dpool[ndpool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&dpool_lock);
	dconn_close(c);
}

void http_direct_cleanup(void)
{
	pthread_mutex_lock(&dpool_lock);
	while (ndpool > 0)
		dconn_close(dpool[--ndpool]);
	pthread_mutex_unlock(&dpool_lock);
}

/* A new connection for req; NULL with rc and resp->err set when it fails. */
static struct dconn *dconn_open(const struct http_req *req, const char *origin,
				struct http_resp *resp, int *rc)
{
	struct dconn *c = xcalloc(1, sizeof(*c));
	snprintf(c->origin, sizeof(c->origin), "%s", origin);
	c->h = curl_easy_init();
	if (!c->h) {
		free(c);
		*rc = -ENOMEM;
		snprintf(resp->err, sizeof(resp->err), "out of memory");
		return NULL;
	}
	http_conn_setup(c->h, req, c->errbuf);
	curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	/* curl_easy_recv takes no more than this at a time */
	curl_easy_setopt(c->h, CURLOPT_BUFFERSIZE, RECV_MAX);
	CURLcode cc = curl_easy_perform(c->h);
	curl_socket_t fd = CURL_SOCKET_BAD;
	if (cc == CURLE_OK)
		cc = curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &fd);
	if (cc != CURLE_OK || fd == CURL_SOCKET_BAD) {
		*rc = cc != CURLE_OK ? http_curl_errno(cc) : -EIO;
		snprintf(resp->err, sizeof(resp->err), "%s",
			 c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
		dconn_close(c);
		return NULL;
	}
	c->fd = fd;
	return c;
}

/* Wait until the socket can take (out) or give bytes; -ETIMEDOUT after ms. */
static int wait_io(struct dconn *c, int out, int ms)
{
	struct pollfd p = { .fd = c->fd, .events = out ? POLLOUT : POLLIN };
	int n;
	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == 0 ? -ETIMEDOUT : 0;
}

static int send_all(struct dconn *c, const char *p, size_t len)
{
	struct http_resp *resp = c->src.resp;
	while (len > 0) {
		size_t n = 0;
		CURLcode cc = curl_easy_send(c->h, p, len, &n);
		if (cc == CURLE_AGAIN) {
			int rc = wait_io(c, 1, (int)c->low_speed_secs * 1000);
			if (rc < 0) {
				snprintf(resp->err, sizeof(resp->err),
					 "sending the request: %s", strerror(-rc));
				return rc;
			}
			continue;
		}
		if (cc != CURLE_OK) {
			snprintf(resp->err, sizeof(resp->err), "sending the request: %s",
				 curl_easy_strerror(cc));
			return -ECONNRESET;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * The low-speed rule at now: -ETIMEDOUT once a whole window of
 * low_speed_secs has passed with under 1 KiB/s in it, as libcurl's limit
 * would have it; a new window starts when one ends.
 */
static int speed_check(struct dconn *c, double now)
{
	long secs = c->low_speed_secs;
	if (now - c->win_start < (double)secs)
		return 0;
	if (c->win_bytes < 1024u * (size_t)secs) {
		snprintf(c->src.resp->err, sizeof(c->src.resp->err),
			 "timed out: under 1 KiB/s for %ld s", secs);
		return -ETIMEDOUT;
	}
	c->win_start = now;
	c->win_bytes = 0;
	return 0;
}

/*
 * Up to cap bytes from the connection into dst: how many (0 at the end of
 * the connection), or a negative errno (-ETIMEDOUT by speed_check).
 */
static ssize_t recv_some(struct http_source *src, void *dst, size_t cap)
{
	struct dconn *c = (struct dconn *)src;
	struct http_resp *resp = src->resp;
	for (;;) {
		/* Before each read: a body that keeps coming is cut short too. */
		if (http_abandoned())
			return http_abandoned_error(resp);
		size_t n = 0;
		CURLcode cc = curl_easy_recv(c->h, dst, cap, &n);
		double now = now_s();
		if (cc == CURLE_OK) {
			src->got += n;
			c->win_bytes += n;
			int rc = n > 0 ? speed_check(c, now) : 0;
			return rc < 0 ? rc : (ssize_t)n;
		}
		if (cc != CURLE_AGAIN) {
			snprintf(resp->err, sizeof(resp->err), "receiving: %s",
				 curl_easy_strerror(cc));
			return -ECONNRESET;
		}
		int rc = speed_check(c, now);
		if (rc < 0)
			return rc;
		double left = c->win_start + (double)c->low_speed_secs - now;
		/* With an abandon time set, look at the clock every second. */
		if (http_abandon_left() >= 0 && left > 1)
			left = 1;
		rc = wait_io(c, 0, (int)(left * 1000) + 1);
		if (rc < 0 && rc != -ETIMEDOUT) {
			snprintf(resp->err, sizeof(resp->err), "receiving: %s", strerror(-rc));
			return rc;
		}
	}
}

/*
 * One exchange on c: the request sent, the answer read. Returns 0 or a
 * negative errno; *keep says whether c may carry another exchange.
 */
static int exchange(struct dconn *c, struct http_req *req, const char *target,
		    const char *authority, int *keep)
{
	*keep = 0;
	struct buf msg = BUF_INIT;
	buf_printf(&msg, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, authority);
	const char *p = req->headers.data, *line;
	size_t len;
	while ((line = http_header_next(&p, &len))) {
		buf_append(&msg, line, len);
		buf_puts(&msg, "\r\n");
	}
	buf_puts(&msg, "User-Agent: " HTTP_USER_AGENT "\r\nAccept: */*\r\n\r\n");
	int rc = send_all(c, msg.data, msg.len);
	buf_free(&msg);
	if (rc < 0)
		return rc;
	return http_read_answer(&c->src, req, keep);
}

int http_direct_get(struct http_req *req, struct http_resp *resp)
{
	http_resp_start(resp);
	char origin[sizeof(((struct dconn *)0)->origin)];
	const char *target;
	if (split_url(req->url, origin, sizeof(origin), &target) < 0) {
		snprintf(resp->err, sizeof(resp->err), "not a URL for a direct GET");
		return -EIO;
	}
	const char *authority = strstr(origin, "://") + 3;
	int rc = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct dconn *c = attempt == 0 ? dpool_take(origin) : NULL;
		int reused = c != NULL;
		if (!c) {
			c = dconn_open(req, origin, resp, &rc);
			if (!c)
				return rc;
		}
		c->src.recv = recv_some;
		c->src.resp = resp;
		c->src.got = 0;
		c->src.in_off = c->src.in_len = 0;
		c->low_speed_secs = req->low_speed_secs ? req->low_speed_secs : 60;
		c->win_start = now_s();
		c->win_bytes = 0;
		int keep = 0;
		rc = exchange(c, req, target, authority, &keep);
		size_t got = c->src.got;
		if (rc == 0 && keep)
			dpool_put(c);
		else
			dconn_close(c);
		/* A kept connection the server had closed fails before any byte
		 * of an answer: open a new one and ask again. */
		if (rc == -ECONNRESET && reused && got == 0) {
			resp->err[0] = '\0';
			continue;
		}
		break;
	}
	if (rc < 0 && rc != -EMSGSIZE)
		resp->status = 0;
	return rc;
}
