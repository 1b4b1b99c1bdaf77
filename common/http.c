/*
 * http: libcurl easy handles in a pool, sharing DNS and TLS sessions.
 *
 * A handle keeps its own kept-alive connection between borrowings
 * (curl_easy_reset keeps live connections and caches), so the pool is what
 * makes connection reuse work across FUSE worker threads. Sizes of the pool
 * follow demand; idle handles are kept up to POOL_MAX.
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http_internal.h"
#include "log.h"

#define POOL_MAX 32
#define BODY_RESERVE_MAX (8u << 20) /* the most an answer's Content-Length reserves up front */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER; /* guards pool, npool */
static CURL *pool[POOL_MAX];
static int npool;
static CURLSH *share;
static uint64_t body_sent;  /* atomic: request body bytes given to libcurl */
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *u)
{
	(void)h; (void)access; (void)u;
	pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *u)
{
	(void)h; (void)u;
	pthread_mutex_unlock(&share_locks[data]);
}

int http_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&share_locks[i], NULL);
	share = curl_share_init();
	if (!share)
		return -ENOMEM;
	curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return 0;
}

void http_global_cleanup(void)
{
	pthread_mutex_lock(&pool_lock);
	for (int i = 0; i < npool; i++)
		curl_easy_cleanup(pool[i]);
	npool = 0;
	pthread_mutex_unlock(&pool_lock);
	http_direct_cleanup();
	if (share)
		curl_share_cleanup(share);
	share = NULL;
	curl_global_cleanup();
}

static CURL *handle_get(void)
{
	CURL *h = NULL;
	pthread_mutex_lock(&pool_lock);
	if (npool > 0)
		h = pool[--npool];
	pthread_mutex_unlock(&pool_lock);
	if (h)
		curl_easy_reset(h);
	else
		h = curl_easy_init();
	return h;
}

static void handle_put(CURL *h)
{
	pthread_mutex_lock(&pool_lock);
	if (npool < POOL_MAX) {
		pool[npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

void http_req_init(struct http_req *req, const char *method, const char *url)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->url = url;
	req->body_fd = -1;
}

void http_req_header(struct http_req *req, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&req->headers, fmt, ap);
	va_end(ap);
	buf_putc(&req->headers, '\n');
}

void http_req_free(struct http_req *req)
{
	/* Headers may carry a bearer token. */
	buf_free_secret(&req->headers);
}

void http_resp_init(struct http_resp *resp)
{
	memset(resp, 0, sizeof(*resp));
}

void http_resp_free(struct http_resp *resp)
{
	buf_free(&resp->body);
}

/* Per-transfer state handed to libcurl's callbacks. */
struct xfer {
	CURL *h;
	struct http_req *req;
	struct http_resp *resp;
	struct curl_slist *hdrs;
	size_t sent;
	int overflow;
	int read_err;
	int abandoned;          /* cut short at the abandon time */
	char errbuf[CURL_ERROR_SIZE];
};

/* CLOCK_MONOTONIC nanoseconds from which transfers are abandoned; 0: never. */
static int64_t abandon_ns;

void http_abandon_at(double at)
{
	__atomic_store_n(&abandon_ns, at > 0 ? (int64_t)(at * 1e9) : 0, __ATOMIC_RELAXED);
}

double http_abandon_left(void)
{
	int64_t at = __atomic_load_n(&abandon_ns, __ATOMIC_RELAXED);
	if (!at)
		return -1;
	int64_t left = at - mono_ns();
	return left > 0 ? (double)left / 1e9 : 0;
}

int http_abandoned(void)
{
	return http_abandon_left() == 0;
}

/* libcurl calls this about once a second, and as bytes move. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	struct xfer *x = arg;
	if (!http_abandoned())
		return 0;
	x->abandoned = 1;
	return 1;
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t want = size * nmemb;
	size_t left = x->req->body_len - x->sent;
	if (want > left)
		want = left;
	if (want == 0)
		return 0;
	if (x->req->body_fd >= 0) {
		ssize_t n = pread(x->req->body_fd, dst, want, x->req->body_off + (off_t)x->sent);
		if (n <= 0) {
			x->read_err = n < 0 ? errno : EIO;
			return CURL_READFUNC_ABORT;
		}
		want = (size_t)n;
	} else {
		memcpy(dst, (const char *)x->req->body + x->sent, want);
	}
	x->sent += want;
	__atomic_add_fetch(&body_sent, want, __ATOMIC_RELAXED);
	return want;
}

static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct xfer *x = arg;
	if (origin != SEEK_SET || offset < 0 || (size_t)offset > x->req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->sent = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

static size_t on_write(char *src, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	long code = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	if (x->req->out && code >= 200 && code < 300) {
		if (x->resp->out_len + n > x->req->out_cap) {
			x->overflow = 1;
			return 0;
		}
		memcpy((char *)x->req->out + x->resp->out_len, src, n);
		x->resp->out_len += n;
		if (x->req->on_out)
			x->req->on_out(x->req->on_out_arg, code, x->resp->out_len);
		return n;
	}
	if (!x->resp->body.cap) {
		/* Room for the whole answer at once: a listing page is hundreds
		 * of KiB, which doubling would copy and fault in again and again. */
		curl_off_t len = -1;
		curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
		if (len > 0 && len <= BODY_RESERVE_MAX)
			buf_grow(&x->resp->body, (size_t)len);
	}
	buf_append(&x->resp->body, src, n);
	return n;
}

static void copy_header_value(char *dst, size_t cap, const char *v, size_t len, int append)
{
	while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
		len--;
	size_t used = append ? strlen(dst) : 0;
	if (append && used && used + 1 < cap)
		dst[used++] = ',';
	if (used + len >= cap)
		len = cap - used - 1;
	memcpy(dst + used, v, len);
	dst[used + len] = '\0';
}

void http_forget_headers(struct http_resp *r)
{
	r->location[0] = r->range[0] = r->content_range[0] = '\0';
	r->goog_hash[0] = r->content_type[0] = r->goog_generation[0] = '\0';
}

void http_note_header(struct http_resp *r, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	if (!colon)
		return;
	size_t klen = (size_t)(colon - line);
	const char *v = colon + 1;
	while (v < line + n && *v == ' ')
		v++;
	size_t vlen = (size_t)(line + n - v);
#define HDR_IS(name) (klen == sizeof(name) - 1 && strncasecmp(line, name, klen) == 0)
	if (HDR_IS("location"))
		copy_header_value(r->location, sizeof(r->location), v, vlen, 0);
	else if (HDR_IS("range"))
		copy_header_value(r->range, sizeof(r->range), v, vlen, 0);
	else if (HDR_IS("content-range"))
		copy_header_value(r->content_range, sizeof(r->content_range), v, vlen, 0);
	else if (HDR_IS("x-goog-hash"))
		copy_header_value(r->goog_hash, sizeof(r->goog_hash), v, vlen, 1);
	else if (HDR_IS("content-type"))
		copy_header_value(r->content_type, sizeof(r->content_type), v, vlen, 0);
	else if (HDR_IS("x-goog-generation"))
		copy_header_value(r->goog_generation, sizeof(r->goog_generation), v, vlen, 0);
#undef HDR_IS
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0)
		http_forget_headers(x->resp); /* a new response (after 100 Continue) */
	else
		http_note_header(x->resp, line, n);
	return n;
}

static int has_header(const struct buf *h, const char *name)
{
	size_t nl = strlen(name);
	const char *p = h->data;
	while (p && *p) {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':')
			return 1;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

static int xfer_setup(struct xfer *x, struct http_req *req, struct http_resp *resp)
{
	memset(x, 0, sizeof(*x));
	x->req = req;
	x->resp = resp;
	x->h = handle_get();
	if (!x->h)
		return -ENOMEM;
	CURL *h = x->h;
	http_resp_start(resp);

	const char *p = req->headers.data, *line;
	size_t len;
	while ((line = http_header_next(&p, &len))) {
		char *one = xstrndup(line, len);
		x->hdrs = curl_slist_append(x->hdrs, one);
		free(one);
	}
	int has_body = strcmp(req->method, "GET") != 0 && strcmp(req->method, "DELETE") != 0;
	if (has_body) {
		/* libcurl's default Content-Type for a POST body is a form
		 * encoding some servers parse away: always name one. */
		if (!has_header(&req->headers, "Content-Type"))
			x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/octet-stream");
		x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	}
	http_conn_setup(h, req, x->errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, req->low_speed_secs ? req->low_speed_secs : 60L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	if (has_body) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
		if (strcmp(req->method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	} else if (strcmp(req->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	}
	return 0;
}

static int map_curl(CURLcode c, const struct xfer *x)
{
	switch (c) {
	case CURLE_WRITE_ERROR:
		return x->overflow ? -EMSGSIZE : -EIO;
	case CURLE_ABORTED_BY_CALLBACK:
		if (x->abandoned)
			return -ECANCELED;
		return x->read_err ? -x->read_err : -EIO;
	case CURLE_READ_ERROR:
		return x->read_err ? -x->read_err : -EIO;
	default:
		return http_curl_errno(c);
	}
}

int http_curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2_STREAM:
		return -ECONNRESET;
	default:
		return -EIO;
	}
}

static int xfer_finish(struct xfer *x, CURLcode c)
{
	int rc = map_curl(c, x);
	long code = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	/* An answer longer than out can hold still tells its status. */
	x->resp->status = rc == 0 || x->overflow ? code : 0;
	if (rc == -ECANCELED)
		http_abandoned_error(x->resp);
	else if (rc != 0)
		snprintf(x->resp->err, sizeof(x->resp->err), "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(c));
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	/* A handle whose transfer failed may hold a broken connection; libcurl
	 * notices and reconnects, so it can still go back to the pool. */
	handle_put(x->h);
	x->h = NULL;
	return rc;
}

void http_conn_setup(CURL *h, const struct http_req *req, char *errbuf)
{
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_USERAGENT, HTTP_USER_AGENT);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SHARE, share);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 req->connect_timeout_ms ? req->connect_timeout_ms : 10000L);
	/* OpenSSL's own variables, which libcurl does not read: a private CA
	 * (an endpoint inside a company's network, a test server) is trusted
	 * the way other tools in the same container are told to. */
	const char *file = getenv("SSL_CERT_FILE");
	const char *dir = getenv("SSL_CERT_DIR");
	if (file && *file)
		curl_easy_setopt(h, CURLOPT_CAINFO, file);
	if (dir && *dir)
		curl_easy_setopt(h, CURLOPT_CAPATH, dir);
}

void http_resp_start(struct http_resp *resp)
{
	resp->status = 0;
	resp->out_len = 0;
	resp->err[0] = '\0';
	buf_reset(&resp->body);
	http_forget_headers(resp);
}

const char *http_header_next(const char **p, size_t *len)
{
	const char *line = *p;
	if (!line || !*line)
		return NULL;
	const char *e = strchr(line, '\n');
	*len = e ? (size_t)(e - line) : strlen(line);
	*p = e ? e + 1 : line + *len;
	return line;
}

int http_abandoned_error(struct http_resp *resp)
{
	snprintf(resp->err, sizeof(resp->err), "%s", HTTP_ABANDONED_TEXT);
	return -ECANCELED;
}

/* A request asked for after the abandon time fails at once. */
static int refuse_abandoned(struct http_resp *resp)
{
	http_resp_start(resp);
	return http_abandoned_error(resp);
}

int http_perform(struct http_req *req, struct http_resp *resp)
{
	if (http_abandoned())
		return refuse_abandoned(resp);
	if (http_direct_usable(req))
		return http_direct_get(req, resp);
	struct xfer x;
	int rc = xfer_setup(&x, req, resp);
	if (rc)
		return rc;
	CURLcode c = curl_easy_perform(x.h);
	return xfer_finish(&x, c);
}

void http_perform_many(struct http_req **reqs, struct http_resp **resps, int *rcs, int n)
{
	CURLM *m = curl_multi_init();
	struct xfer *xs = xcalloc((size_t)n, sizeof(*xs));
	for (int i = 0; i < n; i++) {
		rcs[i] = http_abandoned() ? refuse_abandoned(resps[i])
					  : xfer_setup(&xs[i], reqs[i], resps[i]);
		if (rcs[i] == 0)
			curl_multi_add_handle(m, xs[i].h);
	}
	int running = 1;
	while (running) {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		if (running)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		for (int i = 0; i < n; i++)
			if (xs[i].h == msg->easy_handle) {
				curl_multi_remove_handle(m, xs[i].h);
				rcs[i] = xfer_finish(&xs[i], msg->data.result);
			}
	}
	for (int i = 0; i < n; i++)
		if (xs[i].h) { /* never completed */
			curl_multi_remove_handle(m, xs[i].h);
			rcs[i] = xfer_finish(&xs[i], CURLE_RECV_ERROR);
		}
	free(xs);
	curl_multi_cleanup(m);
}

void http_urlencode(struct buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	buf_grow(out, len * 3);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out->data[out->len++] = (char)c;
		} else {
			out->data[out->len++] = '%';
			out->data[out->len++] = hex[c >> 4];
			out->data[out->len++] = hex[c & 15];
		}
	}
	out->data[out->len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int http_urldecode(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			buf_putc(out, s[i]);
			continue;
		}
		if (i + 2 >= len)
			return -EINVAL;
		int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		buf_putc(out, (char)(hi * 16 + lo));
		i += 2;
	}
	return 0;
}

int http_transport_retryable(int rc)
{
	return rc == -ECONNREFUSED || rc == -ETIMEDOUT || rc == -ECONNRESET;
}

uint64_t http_body_bytes_sent(void)
{
	return __atomic_load_n(&body_sent, __ATOMIC_RELAXED);
}
