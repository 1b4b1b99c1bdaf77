/*
 * The direct GET (common/http_direct.c) against a scripted HTTP/1.1 server
 * on a local socket: each request is answered with the next scripted bytes,
 * so framings libcurl would have hidden (chunks, 1xx, no length, a closed
 * kept-alive connection, a cut or stalled body) are all met on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/http.h"
#include "common/http_internal.h"

#define MAX_ANSWERS 8

struct answer {
	const char *bytes;       /* sent as they are; NULL: close without an answer */
	size_t len;              /* 0: strlen(bytes) */
	int close_after;         /* close the connection once sent */
	int stall_ms;            /* wait this long after the head (the first \r\n\r\n) */
};

static struct {
	int fd;
	int port;
	pthread_t th;
	pthread_mutex_t lock;
	struct answer answers[MAX_ANSWERS];
	int nanswers, next;
	int accepts;
	int stop;
	char last_request[4096];
} S = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Serve one connection: a request in, the next scripted answer out. */
static void serve(int cfd)
{
	char req[4096];
	size_t have = 0;
	for (;;) {
		char *end = have ? memmem(req, have, "\r\n\r\n", 4) : NULL;
		if (!end) {
			if (have == sizeof(req))
				return;
			ssize_t n = recv(cfd, req + have, sizeof(req) - have, 0);
			if (n <= 0)
				return;
			have += (size_t)n;
			continue;
		}
		size_t used = (size_t)(end - req) + 4;
		pthread_mutex_lock(&S.lock);
		memcpy(S.last_request, req, used < sizeof(S.last_request) ? used : sizeof(S.last_request) - 1);
		S.last_request[used < sizeof(S.last_request) ? used : sizeof(S.last_request) - 1] = '\0';
		struct answer a = S.next < S.nanswers ? S.answers[S.next++] : (struct answer){ 0 };
		pthread_mutex_unlock(&S.lock);
		memmove(req, req + used, have - used);
		have -= used;
		if (!a.bytes)
			return;
		size_t len = a.len ? a.len : strlen(a.bytes);
		const char *head_end = memmem(a.bytes, len, "\r\n\r\n", 4);
		size_t first = a.stall_ms && head_end ? (size_t)(head_end - a.bytes) + 4 : len;
		send_all(cfd, a.bytes, first);
		if (first < len || a.stall_ms) {
			usleep((useconds_t)a.stall_ms * 1000);
			send_all(cfd, a.bytes + first, len - first);
		}
		if (a.close_after)
			return;
	}
}

static void *srv_main(void *arg)
{
	(void)arg;
	for (;;) {
		int cfd = accept(S.fd, NULL, NULL);
		if (cfd < 0)
			return NULL;
		pthread_mutex_lock(&S.lock);
		int stop = S.stop;
		S.accepts++;
		pthread_mutex_unlock(&S.lock);
		if (stop) {
			close(cfd);
			return NULL;
		}
		serve(cfd);
		close(cfd);
	}
}

static int srv_start(void **state)
{
	(void)state;
	S.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	if (S.fd < 0 || bind(S.fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(S.fd, 16) ||
	    getsockname(S.fd, (struct sockaddr *)&sa, &sl))
		return -1;
	S.port = ntohs(sa.sin_port);
	if (http_global_init() != 0)
		return -1;
	return pthread_create(&S.th, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

static int srv_stop(void **state)
{
	(void)state;
	http_global_cleanup();         /* closes kept connections: the server's serve() returns */
	pthread_mutex_lock(&S.lock);
	S.stop = 1;
	pthread_mutex_unlock(&S.lock);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)S.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	(void)connect(c, (struct sockaddr *)&sa, sizeof(sa));
	close(c);
	pthread_join(S.th, NULL);
	close(S.fd);
	return 0;
}

/* The next answers, in order; also forgets kept connections. */
static void script(const struct answer *a, int n)
{
	http_direct_cleanup();
	usleep(20 * 1000);             /* the server sees the close and takes the next accept */
	pthread_mutex_lock(&S.lock);
	memcpy(S.answers, a, sizeof(*a) * (size_t)n);
	S.nanswers = n;
	S.next = 0;
	S.accepts = 0;
	pthread_mutex_unlock(&S.lock);
}

static int accepts(void)
{
	pthread_mutex_lock(&S.lock);
	int n = S.accepts;
	pthread_mutex_unlock(&S.lock);
	return n;
}

struct progress {
	size_t last;
	int calls;
	int backwards;
};

static void on_out(void *arg, long status, size_t out_len)
{
	struct progress *p = arg;
	if (status / 100 != 2 || out_len < p->last)
		p->backwards++;
	p->last = out_len;
	p->calls++;
}

/* One GET of /o/x?alt=media into out[cap]: http_perform's code. */
static int get(struct http_resp *resp, char *out, size_t cap, struct progress *p, long low_speed)
{
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/o/x?alt=media", S.port);
	struct http_req req;
	http_req_init(&req, "GET", url);
	http_req_header(&req, "Range: bytes=0-%zu", cap - 1);
	http_req_header(&req, "Authorization: Bearer t0k");
	req.out = out;
	req.out_cap = cap;
	req.low_speed_secs = low_speed;
	if (p) {
		req.on_out = on_out;
		req.on_out_arg = p;
	}
	assert_true(http_direct_usable(&req));
	http_resp_init(resp);
	int rc = http_perform(&req, resp);
	http_req_free(&req);
	return rc;
}

static void test_length_keepalive_and_request(void **state)
{
	(void)state;
	static const struct answer a[] = {
		{ "HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n"
		  "Content-Range: bytes 0-9/100\r\nx-goog-hash: crc32c=AAAAAA==\r\n"
		  "X-Goog-Hash: md5=BBBB\r\nX-Goog-Generation: 1700000000123456\r\n\r\n"
		  "0123456789", 0, 0, 0 },
		{ "HTTP/1.1 206 Partial Content\r\ncontent-length: 5\r\n\r\nabcde", 0, 0, 0 },
	};
	script(a, 2);
	char out[10];
	struct http_resp r;
	struct progress p = { 0 };
	assert_int_equal(get(&r, out, sizeof(out), &p, 0), 0);
	assert_int_equal(r.status, 206);
	assert_int_equal(r.out_len, 10);
	assert_memory_equal(out, "0123456789", 10);
	assert_string_equal(r.content_range, "bytes 0-9/100");
	assert_string_equal(r.goog_hash, "crc32c=AAAAAA==,md5=BBBB");
	assert_string_equal(r.goog_generation, "1700000000123456");
	assert_int_equal(p.last, 10);
	assert_int_equal(p.backwards, 0);
	pthread_mutex_lock(&S.lock);
	assert_non_null(strstr(S.last_request, "GET /o/x?alt=media HTTP/1.1\r\n"));
	char host[64];
	snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", S.port);
	assert_non_null(strstr(S.last_request, host));
	assert_non_null(strstr(S.last_request, "\r\nRange: bytes=0-9\r\n"));
	assert_non_null(strstr(S.last_request, "\r\nAuthorization: Bearer t0k\r\n"));
	assert_non_null(strstr(S.last_request, "\r\nUser-Agent: gcsmount/"));
	pthread_mutex_unlock(&S.lock);
	http_resp_free(&r);
	/* the second request rides the same connection */
	assert_int_equal(get(&r, out, 5, NULL, 0), 0);
	assert_int_equal(r.status, 206);
	assert_memory_equal(out, "abcde", 5);
	assert_int_equal(accepts(), 1);
	http_resp_free(&r);
}

static void test_chunked_and_continue(void **state)
{
	(void)state;
	static const struct answer a[] = {
		{ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		  "Content-Type: text/plain\r\n\r\n"
		  "4;ext=1\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n",
		  0, 0, 0 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, 0 },
	};
	script(a, 2);
	char out[64];
	struct http_resp r;
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.out_len, 23);
	assert_memory_equal(out, "wikipedia in\r\n\r\nchunks.", 23);
	assert_string_equal(r.content_type, "text/plain");
	http_resp_free(&r);
	/* the chunked answer ended where its framing said: the next one follows */
	assert_int_equal(get(&r, out, 2, NULL, 0), 0);
	assert_memory_equal(out, "ok", 2);
	assert_int_equal(accepts(), 1);
	http_resp_free(&r);
}

static void test_error_answer_body(void **state)
{
	(void)state;
	static const struct answer a[] = {
		{ "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
		  "Content-Length: 39\r\n\r\n{\"error\":{\"code\":404,\"message\":\"gone\"}}", 0, 0, 0 },
	};
	script(a, 1);
	char out[8];
	struct http_resp r;
	struct progress p = { 0 };
	assert_int_equal(get(&r, out, sizeof(out), &p, 0), 0);
	assert_int_equal(r.status, 404);
	assert_int_equal(r.out_len, 0);
	assert_int_equal(p.calls, 0);
	assert_int_equal(r.body.len, 39);
	assert_memory_equal(r.body.data, "{\"error\":{\"code\":404,\"message\":\"gone\"}}", 39);
	http_resp_free(&r);
}

static void test_body_cut_short(void **state)
{
	(void)state;
	static const struct answer a[] = {
		{ "HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n\r\n0123456789", 0, 1, 0 },
	};
	script(a, 1);
	char out[100];
	struct http_resp r;
	int rc = get(&r, out, sizeof(out), NULL, 0);
	assert_int_equal(rc, -ECONNRESET);
	assert_true(http_transport_retryable(rc));
	assert_int_equal(r.status, 0);
	assert_int_equal(r.out_len, 10);
	assert_memory_equal(out, "0123456789", 10);
	assert_non_null(strstr(r.err, "90 body bytes still to come"));
	http_resp_free(&r);
}

static void test_longer_than_asked(void **state)
{
	(void)state;
	static const struct answer a[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789", 0, 0, 0 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n"
		  "01234567890123456789\r\n0\r\n\r\n", 0, 0, 0 },
	};
	script(a, 2);
	char out[8];
	struct http_resp r;
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), -EMSGSIZE);
	assert_int_equal(r.status, 200);     /* the status still tells (objects.c reads it) */
	http_resp_free(&r);
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), -EMSGSIZE);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.out_len, 8);
	assert_int_equal(accepts(), 2);      /* the first connection was dropped */
	http_resp_free(&r);
}

static void test_to_close_then_new_connection(void **state)
{
	(void)state;
	static const struct answer a[] = {
		{ "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", 0, 1, 0 },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\none", 0, 0, 0 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", 0, 0, 0 },
	};
	script(a, 3);
	char out[32];
	struct http_resp r;
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), 0);
	assert_int_equal(r.out_len, 13);
	assert_memory_equal(out, "until the end", 13);
	http_resp_free(&r);
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), 0);
	assert_memory_equal(out, "one", 3);
	http_resp_free(&r);
	/* HTTP/1.0 without keep-alive: not kept either */
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), 0);
	assert_memory_equal(out, "two", 3);
	assert_int_equal(accepts(), 3);
	http_resp_free(&r);
}

static void test_closed_while_kept(void **state)
{
	(void)state;
	/* The server closes after answering although it did not say so: the
	 * kept connection is dead when the next request goes out. */
	static const struct answer a[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", 0, 1, 0 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", 0, 0, 0 },
	};
	script(a, 2);
	char out[3];
	struct http_resp r;
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), 0);
	http_resp_free(&r);
	usleep(50 * 1000);
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), 0);
	assert_int_equal(r.status, 200);
	assert_memory_equal(out, "two", 3);
	assert_int_equal(accepts(), 2);
	http_resp_free(&r);
}

static void test_dropped_on_the_next_request(void **state)
{
	(void)state;
	/* The kept connection looks open, but the server drops it on the next
	 * request without a byte of answer: asked again on a new connection. */
	static const struct answer a[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none", 0, 0, 0 },
		{ NULL, 0, 0, 0 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo", 0, 0, 0 },
	};
	script(a, 3);
	char out[3];
	struct http_resp r;
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), 0);
	assert_memory_equal(out, "one", 3);
	http_resp_free(&r);
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), 0);
	assert_int_equal(r.status, 200);
	assert_memory_equal(out, "two", 3);
	assert_int_equal(accepts(), 2);
	http_resp_free(&r);
}

static void test_stalled_body_times_out(void **state)
{
	(void)state;
	static const struct answer a[] = {
		{ "HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\n\r\nlate", 0, 1, 2500 },
	};
	script(a, 1);
	char out[4];
	struct http_resp r;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = get(&r, out, sizeof(out), NULL, 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_int_equal(rc, -ETIMEDOUT);
	assert_int_equal(r.status, 0);
	assert_true(took >= 0.9 && took < 2.4);
	http_resp_free(&r);
}

static double mono(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A shutdown's deadline: transfers under way, direct and through libcurl,
 * are cut short soon after it; a request asked for later fails at once. */
static void test_abandoned_at_the_deadline(void **state)
{
	(void)state;
	static const struct answer a[] = {
		{ "HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\n\r\nlate", 0, 1, 1200 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate", 0, 1, 1200 },
	};
	script(a, 2);
	char out[4];
	struct http_resp r;
	double t0 = mono();
	http_abandon_at(t0 + 0.3);
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), -ECANCELED);
	double took = mono() - t0;
	assert_true(took >= 0.25 && took < 1.8);   /* it looks at the clock each second */
	assert_string_equal(r.err, HTTP_ABANDONED_TEXT);
	http_resp_free(&r);

	/* libcurl's transfer (no out buffer), its deadline already past: at once. */
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/o/x", S.port);
	struct http_req req;
	http_req_init(&req, "GET", url);
	http_resp_init(&r);
	t0 = mono();
	assert_int_equal(http_perform(&req, &r), -ECANCELED);
	assert_true(mono() - t0 < 0.2);
	http_resp_free(&r);

	/* libcurl's transfer under way when the deadline comes. */
	http_abandon_at(mono() + 0.3);
	http_resp_init(&r);
	t0 = mono();
	assert_int_equal(http_perform(&req, &r), -ECANCELED);
	took = mono() - t0;
	assert_true(took >= 0.25 && took < 1.8);
	assert_string_equal(r.err, HTTP_ABANDONED_TEXT);
	http_resp_free(&r);
	http_req_free(&req);
	http_abandon_at(0);
	/* The server is done with both stalled answers before the next test. */
	usleep(1300 * 1000);
}

static void test_bad_answers(void **state)
{
	(void)state;
	static const struct answer a[] = {
		{ "SSH-2.0-OpenSSH\r\n\r\n", 0, 1, 0 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", 0, 1, 0 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 1, 0 },
	};
	script(a, 3);
	char out[16];
	struct http_resp r;
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), -EIO);
	assert_non_null(strstr(r.err, "status line"));
	http_resp_free(&r);
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), -EIO);
	assert_non_null(strstr(r.err, "Content-Length"));
	http_resp_free(&r);
	assert_int_equal(get(&r, out, sizeof(out), NULL, 0), -EIO);
	assert_non_null(strstr(r.err, "chunk"));
	http_resp_free(&r);
}

static void test_nobody_listening(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);                      /* a port nobody listens on */
	char url[128], out[4];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/o/x?alt=media", ntohs(sa.sin_port));
	struct http_req req;
	struct http_resp r;
	http_req_init(&req, "GET", url);
	req.out = out;
	req.out_cap = sizeof(out);
	http_resp_init(&r);
	assert_int_equal(http_perform(&req, &r), -ECONNREFUSED);
	assert_int_equal(r.status, 0);
	assert_true(r.err[0] != '\0');
	http_req_free(&req);
	http_resp_free(&r);
}

static void test_which_requests(void **state)
{
	(void)state;
	char out[4];
	struct http_req req;
	http_req_init(&req, "GET", "https://storage.googleapis.com/storage/v1/b/b/o/x?alt=media");
	assert_false(http_direct_usable(&req));          /* no out: libcurl's transfer */
	req.out = out;
	req.out_cap = sizeof(out);
	assert_true(http_direct_usable(&req));
	req.method = "POST";
	assert_false(http_direct_usable(&req));
	req.method = "GET";
	static const char *const odd[] = { "ftp://h/x", "http://h", "http://u:p@h/x",
					   "http://h/x#frag", "http:///x" };
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		req.url = odd[i];
		assert_false(http_direct_usable(&req));
	}
	req.url = "http://127.0.0.1:8/x";
	setenv("https_proxy", "http://proxy:3128", 1);
	assert_false(http_direct_usable(&req));          /* a proxy is libcurl's to speak to */
	unsetenv("https_proxy");
	assert_true(http_direct_usable(&req));
	http_req_free(&req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_length_keepalive_and_request),
		cmocka_unit_test(test_chunked_and_continue),
		cmocka_unit_test(test_error_answer_body),
		cmocka_unit_test(test_body_cut_short),
		cmocka_unit_test(test_longer_than_asked),
		cmocka_unit_test(test_to_close_then_new_connection),
		cmocka_unit_test(test_closed_while_kept),
		cmocka_unit_test(test_dropped_on_the_next_request),
		cmocka_unit_test(test_stalled_body_times_out),
		cmocka_unit_test(test_abandoned_at_the_deadline),
		cmocka_unit_test(test_bad_answers),
		cmocka_unit_test(test_nobody_listening),
		cmocka_unit_test(test_which_requests),
	};
	return cmocka_run_group_tests(tests, srv_start, srv_stop);
}
