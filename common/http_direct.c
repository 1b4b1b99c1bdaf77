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
 * req->out. Connections are kept alive in a pool of their own; one the
 * server closed while it sat there is opened again, once, when it fails
 * before any byte of the answer.
 *
 * Used for GETs into req->out when no proxy is set in the environment (a
 * proxy is libcurl's to speak to); everything else goes through libcurl's
 * transfer as before.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "http_internal.h"
#include "log.h"

#define DPOOL_MAX 32
#define IN_CAP (16 * 1024)         /* the longest header line or chunk line */
#define RECV_MAX (512L * 1024)     /* the most one receive asks for */
#define DCONN_MAX_IDLE 100.0      /* seconds a kept connection may sit unused */
#define ERROR_BODY_MAX (1u << 20)  /* of a non-2xx answer, kept for its message */

struct dconn {
	CURL *h;
	curl_socket_t fd;
	char origin[320];           /* scheme://authority it is connected to */
	char in[IN_CAP];            /* received, in[in_off..in_len) not yet used */
	size_t in_off, in_len;
	char errbuf[CURL_ERROR_SIZE];
	double idle_since;          /* when it last went back to the pool */
	/* Without h: the answer comes from here, at most piece bytes a time. */
	const char *mem;
	size_t mem_len, mem_off, piece;
};

/* The read side of one exchange: its deadline rules and what went wrong. */
struct exchange {
	struct dconn *c;
	struct http_resp *resp;
	long low_speed_secs;        /* fewer than 1 KiB/s for this long: timed out */
	double win_start;
	size_t win_bytes;
	size_t got;                 /* answer bytes received, headers included */
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
	curl_easy_setopt(c->h, CURLOPT_URL, req->url);
	curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_SHARE, http_share());
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->h, CURLOPT_TCP_KEEPALIVE, 1L);
	http_tls_setup(c->h);
	/* curl_easy_recv takes no more than this at a time */
	curl_easy_setopt(c->h, CURLOPT_BUFFERSIZE, RECV_MAX);
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
			 req->connect_timeout_ms ? req->connect_timeout_ms : 10000L);
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

static int send_all(struct exchange *x, const char *p, size_t len)
{
	while (len > 0) {
		size_t n = 0;
		CURLcode cc = curl_easy_send(x->c->h, p, len, &n);
		if (cc == CURLE_AGAIN) {
			int rc = wait_io(x->c, 1, (int)x->low_speed_secs * 1000);
			if (rc < 0) {
				snprintf(x->resp->err, sizeof(x->resp->err),
					 "sending the request: %s", strerror(-rc));
				return rc;
			}
			continue;
		}
		if (cc != CURLE_OK) {
			snprintf(x->resp->err, sizeof(x->resp->err), "sending the request: %s",
				 curl_easy_strerror(cc));
			return -ECONNRESET;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Up to cap bytes from the connection into dst: how many (0 at the end of
 * the connection), or a negative errno. Slower than 1 KiB/s for
 * low_speed_secs is -ETIMEDOUT, as libcurl's low-speed limit would have it.
 */
static ssize_t recv_some(struct exchange *x, void *dst, size_t cap)
{
	struct dconn *c = x->c;
	if (!c->h) {
		size_t n = c->mem_len - c->mem_off;
		n = n < cap ? n : cap;
		n = n < c->piece ? n : c->piece;
		memcpy(dst, c->mem + c->mem_off, n);
		c->mem_off += n;
		x->got += n;
		return (ssize_t)n;
	}
	for (;;) {
		size_t n = 0;
		CURLcode cc = curl_easy_recv(x->c->h, dst, cap, &n);
		double now = now_s();
		if (cc == CURLE_OK) {
			x->got += n;
			x->win_bytes += n;
			if (now - x->win_start >= (double)x->low_speed_secs) {
				if (n > 0 && x->win_bytes < 1024u * (size_t)x->low_speed_secs) {
					snprintf(x->resp->err, sizeof(x->resp->err),
						 "timed out: under 1 KiB/s for %ld s",
						 x->low_speed_secs);
					return -ETIMEDOUT;
				}
				x->win_start = now;
				x->win_bytes = 0;
			}
			return (ssize_t)n;
		}
		if (cc != CURLE_AGAIN) {
			snprintf(x->resp->err, sizeof(x->resp->err), "receiving: %s",
				 curl_easy_strerror(cc));
			return -ECONNRESET;
		}
		double left = x->win_start + (double)x->low_speed_secs - now;
		if (left <= 0) {
			if (x->win_bytes < 1024u * (size_t)x->low_speed_secs) {
				snprintf(x->resp->err, sizeof(x->resp->err),
					 "timed out: under 1 KiB/s for %ld s", x->low_speed_secs);
				return -ETIMEDOUT;
			}
			x->win_start = now;
			x->win_bytes = 0;
			left = (double)x->low_speed_secs;
		}
		int rc = wait_io(x->c, 0, (int)(left * 1000) + 1);
		if (rc < 0 && rc != -ETIMEDOUT) {
			snprintf(x->resp->err, sizeof(x->resp->err), "receiving: %s", strerror(-rc));
			return rc;
		}
	}
}

/* One line of the answer's head or chunk framing, without its line end. */
static int read_line(struct exchange *x, char **line, size_t *len)
{
	struct dconn *c = x->c;
	for (;;) {
		char *start = c->in + c->in_off;
		char *nl = memchr(start, '\n', c->in_len - c->in_off);
		if (nl) {
			*line = start;
			*len = (size_t)(nl - start);
			if (*len && start[*len - 1] == '\r')
				(*len)--;
			c->in_off = (size_t)(nl - c->in) + 1;
			return 0;
		}
		if (c->in_off > 0) {
			memmove(c->in, start, c->in_len - c->in_off);
			c->in_len -= c->in_off;
			c->in_off = 0;
		}
		if (c->in_len == sizeof(c->in)) {
			snprintf(x->resp->err, sizeof(x->resp->err), "a header line over %d bytes",
				 IN_CAP);
			return -EIO;
		}
		ssize_t n = recv_some(x, c->in + c->in_len, sizeof(c->in) - c->in_len);
		if (n < 0)
			return (int)n;
		if (n == 0) {
			snprintf(x->resp->err, sizeof(x->resp->err),
				 x->got ? "connection closed in the answer's head"
					: "connection closed before an answer");
			return -ECONNRESET;
		}
		c->in_len += (size_t)n;
	}
}

/* Up to cap body bytes into dst: those already received first, then from
 * the socket. 0 at the end of the connection. */
static ssize_t read_body(struct exchange *x, char *dst, size_t cap)
{
	struct dconn *c = x->c;
	size_t have = c->in_len - c->in_off;
	if (have > 0) {
		size_t n = have < cap ? have : cap;
		memcpy(dst, c->in + c->in_off, n);
		c->in_off += n;
		return (ssize_t)n;
	}
	return recv_some(x, dst, cap);
}

/* Where a body's bytes go: the caller's memory (a 2xx into req->out) or
 * resp->body (anything else). */
struct sink {
	struct http_req *req;
	struct http_resp *resp;
	int to_out;
	long status;
};

/* len bytes of body (all there is to the end of the connection when
 * to_eof) into the sink. */
static int take_body(struct exchange *x, struct sink *s, size_t len, int to_eof)
{
	char scratch[16 * 1024];
	while (len > 0 || to_eof) {
		char *dst;
		size_t room;
		if (s->to_out) {
			room = s->req->out_cap - s->resp->out_len;
			if (room == 0) {
				snprintf(x->resp->err, sizeof(x->resp->err),
					 "answer longer than the %zu bytes asked for", s->req->out_cap);
				return -EMSGSIZE;
			}
			dst = (char *)s->req->out + s->resp->out_len;
		} else {
			dst = scratch;
			room = sizeof(scratch);
		}
		if (!to_eof && room > len)
			room = len;
		ssize_t n = read_body(x, dst, room);
		if (n < 0)
			return (int)n;
		if (n == 0) {
			if (to_eof)
				return 0;
			snprintf(x->resp->err, sizeof(x->resp->err),
				 "connection closed with %zu body bytes still to come", len);
			return -ECONNRESET;
		}
		if (s->to_out) {
			s->resp->out_len += (size_t)n;
			if (s->req->on_out)
				s->req->on_out(s->req->on_out_arg, s->status, s->resp->out_len);
		} else if (s->resp->body.len < ERROR_BODY_MAX) {
			buf_append(&s->resp->body, dst, (size_t)n);
		}
		if (!to_eof)
			len -= (size_t)n;
	}
	return 0;
}

static int take_chunked(struct exchange *x, struct sink *s)
{
	for (;;) {
		char *line;
		size_t len;
		int rc = read_line(x, &line, &len);
		if (rc < 0)
			return rc;
		uint64_t size = 0;
		size_t i = 0;
		for (; i < len && i < 16; i++) {
			char ch = line[i];
			int d = ch >= '0' && ch <= '9' ? ch - '0'
				: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
				: ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
			if (d < 0)
				break;
			size = size * 16 + (uint64_t)d;
		}
		if (i == 0 || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t')) {
			snprintf(x->resp->err, sizeof(x->resp->err), "a bad chunk size line");
			return -EIO;
		}
		if (size == 0)
			break;
		rc = take_body(x, s, (size_t)size, 0);
		if (rc < 0)
			return rc;
		rc = read_line(x, &line, &len); /* the CRLF after the chunk */
		if (rc < 0)
			return rc;
	}
	for (;;) { /* trailers, up to the empty line */
		char *line;
		size_t len;
		int rc = read_line(x, &line, &len);
		if (rc < 0)
			return rc;
		if (len == 0)
			return 0;
	}
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len > 19)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* What the head says about the body that follows. */
struct head {
	long status;
	int http10;
	int close;
	int chunked;
	int has_length;
	uint64_t length;
};

static int read_head(struct exchange *x, struct head *hd)
{
	for (;;) { /* 1xx answers come before the real one */
		memset(hd, 0, sizeof(*hd));
		http_forget_headers(x->resp);
		char *line;
		size_t len;
		int rc = read_line(x, &line, &len);
		if (rc < 0)
			return rc;
		if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' ||
		    line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' ||
		    line[11] < '0' || line[11] > '9') {
			snprintf(x->resp->err, sizeof(x->resp->err), "not an HTTP/1.x status line");
			return -EIO;
		}
		hd->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
		hd->http10 = line[7] == '0';
		hd->close = hd->http10;
		for (;;) {
			rc = read_line(x, &line, &len);
			if (rc < 0)
				return rc;
			if (len == 0)
				break;
			http_note_header(x->resp, line, len);
			const char *colon = memchr(line, ':', len);
			if (!colon)
				continue;
			size_t klen = (size_t)(colon - line);
			const char *v = colon + 1;
			size_t vlen = len - klen - 1;
#define IS(name) (klen == sizeof(name) - 1 && strncasecmp(line, name, klen) == 0)
			if (IS("content-length")) {
				if (parse_u64(v, vlen, &hd->length) < 0) {
					snprintf(x->resp->err, sizeof(x->resp->err),
						 "a bad Content-Length");
					return -EIO;
				}
				hd->has_length = 1;
			} else if (IS("transfer-encoding")) {
				hd->chunked = vlen >= 7 &&
					      strncasecmp(v + vlen - 7, "chunked", 7) == 0;
			} else if (IS("connection")) {
				for (size_t i = 0; i + 5 <= vlen; i++)
					if (strncasecmp(v + i, "close", 5) == 0)
						hd->close = 1;
			}
#undef IS
		}
		if (hd->status >= 200)
			return 0;
	}
}

static int read_answer(struct exchange *x, struct http_req *req, int *keep);

static void resp_start(struct http_resp *resp)
{
	resp->status = 0;
	resp->out_len = 0;
	resp->err[0] = '\0';
	buf_reset(&resp->body);
	http_forget_headers(resp);
}

/*
 * One exchange on c: the request sent, the answer read. Returns 0 or a
 * negative errno; *keep says whether c may carry another exchange.
 */
static int exchange(struct exchange *x, struct http_req *req, const char *target,
		    const char *authority, int *keep)
{
	*keep = 0;
	struct buf msg = BUF_INIT;
	buf_printf(&msg, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, authority);
	const char *p = req->headers.data;
	while (p && *p) {
		const char *e = strchr(p, '\n');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		buf_append(&msg, p, len);
		buf_puts(&msg, "\r\n");
		p = e ? e + 1 : p + len;
	}
	buf_puts(&msg, "Accept: */*\r\n\r\n");
	int rc = send_all(x, msg.data, msg.len);
	buf_free(&msg);
	if (rc < 0)
		return rc;
	return read_answer(x, req, keep);
}

int http_direct_read_answer(const char *bytes, size_t len, size_t piece, struct http_req *req,
			    struct http_resp *resp, int *keep)
{
	struct dconn *c = xcalloc(1, sizeof(*c));
	c->mem = bytes;
	c->mem_len = len;
	c->piece = piece ? piece : 1;
	struct exchange x = { c, resp, 60, now_s(), 0, 0 };
	resp_start(resp);
	int rc = read_answer(&x, req, keep);
	if (rc < 0 && rc != -EMSGSIZE)
		resp->status = 0;
	free(c);
	return rc;
}

static int read_answer(struct exchange *x, struct http_req *req, int *keep)
{
	struct http_resp *resp = x->resp;
	*keep = 0;
	struct head hd;
	int rc = read_head(x, &hd);
	if (rc < 0)
		return rc;
	struct sink s = { req, resp, hd.status >= 200 && hd.status < 300, hd.status };
	if (hd.status == 204 || hd.status == 304)
		rc = 0;
	else if (hd.chunked)
		rc = take_chunked(x, &s);
	else if (hd.has_length && s.to_out && hd.length > req->out_cap)
		rc = -EMSGSIZE; /* not read: the connection is dropped */
	else if (hd.has_length)
		rc = take_body(x, &s, (size_t)hd.length, 0);
	else
		rc = take_body(x, &s, 0, 1);
	if (rc == -EMSGSIZE) {
		resp->status = hd.status; /* as http_perform: the status still counts */
		if (!resp->err[0])
			snprintf(resp->err, sizeof(resp->err), "answer of %" PRIu64
				 " bytes, more than the %zu asked for", hd.length, req->out_cap);
		return rc;
	}
	if (rc < 0)
		return rc;
	resp->status = hd.status;
	*keep = !hd.close && (hd.chunked || hd.has_length || hd.status == 204 ||
			      hd.status == 304);
	return 0;
}

int http_direct_get(struct http_req *req, struct http_resp *resp)
{
	resp_start(resp);
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
		c->in_off = c->in_len = 0;
		struct exchange x = { c, resp, req->low_speed_secs ? req->low_speed_secs : 60,
				      now_s(), 0, 0 };
		int keep = 0;
		rc = exchange(&x, req, target, authority, &keep);
		if (rc == 0 && keep)
			dpool_put(c);
		else
			dconn_close(c);
		/* A kept connection the server had closed fails before any byte
		 * of an answer: open a new one and ask again. */
		if (rc == -ECONNRESET && reused && x.got == 0) {
			resp->err[0] = '\0';
			continue;
		}
		break;
	}
	if (rc < 0 && rc != -EMSGSIZE)
		resp->status = 0;
	return rc;
}
