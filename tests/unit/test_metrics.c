/* Unit tests of common/metrics: histogram bucketing, the Prometheus text
 * format, collectors, and the /metrics endpoint. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/metrics.h"

static void test_bucket_index(void **state)
{
	(void)state;
	assert_int_equal(metrics_bucket_index(0), 0);
	assert_int_equal(metrics_bucket_index(0.0009), 0);
	assert_int_equal(metrics_bucket_index(0.001), 0); /* le is inclusive */
	assert_int_equal(metrics_bucket_index(0.0011), 1);
	assert_int_equal(metrics_bucket_index(0.3), 8);    /* le=0.5 */
	assert_int_equal(metrics_bucket_index(1), 9);
	assert_int_equal(metrics_bucket_index(60), METRICS_NBUCKETS - 1);
	assert_int_equal(metrics_bucket_index(60.001), METRICS_NBUCKETS);
	assert_int_equal(metrics_bucket_index(1e12), METRICS_NBUCKETS);
	for (int i = 1; i < METRICS_NBUCKETS; i++)
		assert_true(metrics_bucket_bounds[i] > metrics_bucket_bounds[i - 1]);
}

static int is_name_char(char c, int first)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':' || (!first && isdigit((unsigned char)c));
}

/*
 * Check one exposition: every sample line is NAME[{LABELS}] VALUE with a
 * value strtod accepts, every sample belongs to a family declared by a
 * # TYPE line before it, and TYPE names a known type.
 */
static void check_exposition(const char *text)
{
	char family[256] = "", type[32] = "";
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl); /* every line ends with a newline */
		char line[4096];
		size_t len = (size_t)(nl - p);
		assert_true(len < sizeof(line));
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl + 1;
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%255s %31s", family, type), 2);
			assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
				    strcmp(type, "histogram") == 0);
			if (strcmp(type, "counter") == 0)
				assert_non_null(strstr(family, "_total"));
			continue;
		}
		assert_true(line[0] != '#');
		size_t i = 0;
		assert_true(is_name_char(line[0], 1));
		while (is_name_char(line[i], 0))
			i++;
		char name[256];
		memcpy(name, line, i);
		name[i] = '\0';
		assert_true(family[0] != '\0');
		if (strcmp(type, "histogram") == 0) {
			size_t fl = strlen(family);
			assert_int_equal(strncmp(name, family, fl), 0);
			assert_true(strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 ||
				    strcmp(name + fl, "_count") == 0);
		} else {
			assert_string_equal(name, family);
		}
		if (line[i] == '{') {
			i++;
			while (line[i] != '}') {
				assert_true(is_name_char(line[i], 1));
				while (is_name_char(line[i], 0))
					i++;
				assert_int_equal(line[i++], '=');
				assert_int_equal(line[i++], '"');
				while (line[i] != '"') {
					assert_true(line[i] != '\0');
					if (line[i] == '\\')
						i++;
					i++;
				}
				i++;
				if (line[i] == ',')
					i++;
			}
			i++;
		}
		assert_int_equal(line[i], ' ');
		char *end;
		(void)strtod(line + i + 1, &end);
		assert_true(end != line + i + 1);
		assert_int_equal(*end, '\0');
	}
}

/* The value of the sample that starts with `prefix` (name and labels), or -1. */
static double sample(const char *text, const char *prefix)
{
	size_t pl = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ')
			return strtod(p + pl + 1, NULL);
	return -1;
}

/* The t_read duration histogram's bucket with upper bound le ("+Inf" too). */
static double t_read_bucket(const char *text, const char *le)
{
	char key[256];
	snprintf(key, sizeof(key),
		 "gcsmount_http_request_duration_seconds_bucket{kind=\"t_read\",le=\"%s\"}", le);
	return sample(text, key);
}

static void test_render_requests(void **state)
{
	(void)state;
	metrics_reset();
	int k = metrics_kind("t read");
	assert_true(k >= 0);
	assert_int_equal(metrics_kind("t read"), k);
	int k2 = metrics_kind("t upload");
	assert_true(k2 >= 0 && k2 != k);
	metrics_http_begin(k);
	metrics_http_attempt(k, 200, 0.0005, 0, 100);
	metrics_http_begin(k);
	metrics_http_attempt(k, 503, 2.0, 0, 20);
	metrics_http_retry(k);
	metrics_http_begin(k);
	metrics_http_attempt(k, 0, 61, 0, 0);
	metrics_http_begin(k2);
	metrics_http_attempt(k2, 308, 0.2, 1u << 20, 0);
	metrics_http_begin(k2); /* still in flight */

	struct buf out = BUF_INIT;
	metrics_render(&out);
	check_exposition(out.data);
	const char *t = out.data;
	assert_true(sample(t, "gcsmount_http_requests_total{kind=\"t_read\",code=\"200\"}") == 1);
	assert_true(sample(t, "gcsmount_http_requests_total{kind=\"t_read\",code=\"503\"}") == 1);
	assert_true(sample(t, "gcsmount_http_requests_total{kind=\"t_read\",code=\"error\"}") == 1);
	assert_true(sample(t, "gcsmount_http_requests_total{kind=\"t_upload\",code=\"308\"}") == 1);
	assert_true(sample(t, "gcsmount_http_retries_total{kind=\"t_read\"}") == 1);
	assert_true(sample(t, "gcsmount_http_received_bytes_total{kind=\"t_read\"}") == 120);
	assert_true(sample(t, "gcsmount_http_sent_bytes_total{kind=\"t_upload\"}") == 1048576);
	assert_true(sample(t, "gcsmount_http_requests_in_flight{kind=\"t_read\"}") == 0);
	assert_true(sample(t, "gcsmount_http_requests_in_flight{kind=\"t_upload\"}") == 1);

	/* Cumulative buckets: 0.0005 s, 2 s, 61 s. */
	const char *h = "gcsmount_http_request_duration_seconds";
	char key[256];
	double prev = 0;
	for (int b = 0; b <= METRICS_NBUCKETS; b++) {
		char le[32];
		if (b < METRICS_NBUCKETS)
			snprintf(le, sizeof(le), "%g", metrics_bucket_bounds[b]);
		else
			snprintf(le, sizeof(le), "+Inf");
		double v = t_read_bucket(t, le);
		assert_true(v >= prev);
		prev = v;
	}
	assert_true(t_read_bucket(t, "0.001") == 1);
	assert_true(t_read_bucket(t, "1") == 1);
	assert_true(t_read_bucket(t, "2.5") == 2);
	assert_true(t_read_bucket(t, "60") == 2);
	assert_true(t_read_bucket(t, "+Inf") == 3);
	snprintf(key, sizeof(key), "%s_count{kind=\"t_read\"}", h);
	assert_true(sample(t, key) == 3);
	snprintf(key, sizeof(key), "%s_sum{kind=\"t_read\"}", h);
	assert_true(fabs(sample(t, key) - 63.0005) < 1e-6);
	buf_free(&out);
	metrics_http_attempt(k2, 200, 0, 0, 0);
}

static void test_label_escaping(void **state)
{
	(void)state;
	int k = metrics_kind("a\"b\\c");
	metrics_http_begin(k);
	metrics_http_attempt(k, 204, 0.01, 0, 0);
	struct buf out = BUF_INIT;
	metrics_render(&out);
	check_exposition(out.data);
	assert_non_null(strstr(out.data, "{kind=\"a\\\"b\\\\c\",code=\"204\"} 1\n"));
	buf_free(&out);
}

static void collect(void *arg, struct buf *out)
{
	const double *v = arg;
	metrics_put(out, "t_gauge", METRICS_GAUGE, "A gauge.\nTwo lines, a \\.", v[0]);
	metrics_put(out, "t_frac", METRICS_GAUGE, "Fractional.", v[1]);
	metrics_put(out, "t_nan", METRICS_GAUGE, "Not a number.", NAN);
	metrics_put(out, "t_things_total", METRICS_COUNTER, "A counter.", v[2]);
}

static void test_collectors(void **state)
{
	(void)state;
	double v[3] = {3, 1.5, 12345678901.0};
	metrics_add_collector(collect, v);
	struct buf out = BUF_INIT;
	metrics_render(&out);
	check_exposition(out.data);
	assert_non_null(strstr(out.data, "# HELP t_gauge A gauge.\\nTwo lines, a \\\\.\n"
				       "# TYPE t_gauge gauge\nt_gauge 3\n"));
	assert_non_null(strstr(out.data, "\nt_frac 1.5\n"));
	assert_non_null(strstr(out.data, "\nt_nan NaN\n"));
	assert_non_null(strstr(out.data, "# TYPE t_things_total counter\nt_things_total 12345678901\n"));
	metrics_clear_collectors();
	buf_reset(&out);
	metrics_render(&out);
	assert_null(strstr(out.data, "t_gauge"));
	buf_free(&out);
}

static void test_bad_addresses(void **state)
{
	(void)state;
	const char *bad[] = {"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
			     "127.0.0.1:65536", "127.0.0.1:-5", "127.0.0.1:9x", "::1:9100",
			     "[::1:9100", "[::1]9100", "no.such.host.invalid:9100"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		assert_true(metrics_serve_bind(bad[i], err, sizeof(err)) < 0);
		assert_true(strncmp(err, "metrics=", 8) == 0);
		assert_null(strchr(err, '\n'));
	}
	metrics_serve_stop();
}

/* A listening socket on a free port of 127.0.0.1. */
static int listen_any(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	socklen_t al = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &al);
	*port = ntohs(a.sin_port);
	return fd;
}

static void http_get(int port, const char *req, struct buf *resp)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	char chunk[4096];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(resp, chunk, (size_t)n);
	close(fd);
}

static void test_serve(void **state)
{
	(void)state;
	int port;
	int busy = listen_any(&port);
	char addr[64], err[256] = "";
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	/* A port in use is an error at once. */
	assert_true(metrics_serve_bind(addr, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "in use"));
	close(busy); /* free it for the server */
	assert_int_equal(metrics_serve_start(addr, err, sizeof(err)), 0);

	struct buf r = BUF_INIT;
	http_get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_true(strncmp(r.data, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_non_null(strstr(r.data, "Content-Type: text/plain; version=0.0.4"));
	char *body = strstr(r.data, "\r\n\r\n");
	assert_non_null(body);
	check_exposition(body + 4);
	unsigned long clen = strtoul(strstr(r.data, "Content-Length: ") + 16, NULL, 10);
	assert_int_equal(clen, strlen(body + 4));

	buf_reset(&r);
	http_get(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n", &r);
	assert_true(strncmp(r.data, "HTTP/1.1 200 OK\r\n", 17) == 0);
	buf_reset(&r);
	http_get(port, "GET / HTTP/1.1\r\n\r\n", &r);
	assert_true(strncmp(r.data, "HTTP/1.1 404 ", 13) == 0);
	buf_reset(&r);
	http_get(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
	assert_true(strncmp(r.data, "HTTP/1.1 405 ", 13) == 0);
	buf_reset(&r);
	http_get(port, "garbage\r\n\r\n", &r);
	assert_true(strncmp(r.data, "HTTP/1.1 400 ", 13) == 0);
	buf_free(&r);
	metrics_serve_stop();
	metrics_serve_stop(); /* twice is harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_index),
		cmocka_unit_test(test_render_requests),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_collectors),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_serve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
