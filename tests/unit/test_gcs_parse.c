/* Unit tests of gcs/'s pure parts: JSON, headers, names, times, errno table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gcs/gcs.h"
#include "gcs/json_arena.h"

static void test_object_parse(void **state)
{
	(void)state;
	const char *j = "{\"kind\":\"storage#object\",\"name\":\"run/a b.txt\",\"size\":\"12345678901\","
			"\"generation\":\"1700000000123456\",\"metageneration\":\"3\","
			"\"crc32c\":\"4waSgw==\",\"componentCount\":7,"
			"\"updated\":\"2024-01-02T03:04:05.678Z\","
			"\"metadata\":{\"goog-reserved-file-mtime\":\"1600000000\"}}";
	struct gcs_object o;
	assert_int_equal(gcs_object_parse(j, strlen(j), &o), 0);
	assert_string_equal(o.name, "run/a b.txt");
	assert_true(o.size == 12345678901ull);
	assert_true(o.generation == 1700000000123456ll);
	assert_int_equal(o.metageneration, 3);
	assert_int_equal(o.component_count, 7);
	assert_true(o.has_crc32c);
	assert_int_equal(o.crc32c, 0xE3069283u);
	assert_int_equal(o.mtime.tv_sec, 1600000000);
	assert_false(o.is_symlink);
	gcs_object_clear(&o);
}

static void test_mtime_precedence(void **state)
{
	(void)state;
	struct gcs_object o;
	const char *a = "{\"name\":\"x\",\"updated\":\"2024-01-02T03:04:05Z\",\"metadata\":"
			"{\"mtime\":\"2001-02-03T04:05:06.123456789Z\",\"goog-reserved-file-mtime\":\"5\"}}";
	assert_int_equal(gcs_object_parse(a, strlen(a), &o), 0);
	assert_int_equal(o.mtime.tv_sec, 981173106);
	assert_int_equal(o.mtime.tv_nsec, 123456789);
	gcs_object_clear(&o);
	const char *b = "{\"name\":\"x\",\"updated\":\"2024-01-02T03:04:05Z\",\"metadata\":"
			"{\"gcsfuse_mtime\":\"2010-01-01T00:00:00+01:00\"}}";
	assert_int_equal(gcs_object_parse(b, strlen(b), &o), 0);
	assert_int_equal(o.mtime.tv_sec, 1262300400);
	gcs_object_clear(&o);
	const char *c = "{\"name\":\"x\",\"updated\":\"2024-01-02T03:04:05.5Z\","
			"\"metadata\":{\"goog-reserved-file-is-symlink\":\"true\"}}";
	assert_int_equal(gcs_object_parse(c, strlen(c), &o), 0);
	assert_int_equal(o.mtime.tv_sec, 1704164645);
	assert_int_equal(o.mtime.tv_nsec, 500000000);
	assert_true(o.is_symlink);
	gcs_object_clear(&o);
	const char *d = "{\"name\":\"x\",\"metadata\":{\"gcsfuse_symlink_target\":\"../t\"}}";
	assert_int_equal(gcs_object_parse(d, strlen(d), &o), 0);
	assert_true(o.is_symlink);
	assert_string_equal(o.symlink_target, "../t");
	gcs_object_clear(&o);
}

static void test_object_parse_bad(void **state)
{
	(void)state;
	struct gcs_object o;
	const char *bad[] = {"", "{", "[]", "{\"size\":\"1\"}", "{\"name\":5}", "null"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(gcs_object_parse(bad[i], strlen(bad[i]), &o), -EINVAL);
	/* A negative or garbled size is not trusted. */
	const char *neg = "{\"name\":\"n\",\"size\":\"-5\",\"generation\":\"x\"}";
	assert_int_equal(gcs_object_parse(neg, strlen(neg), &o), 0);
	assert_true(o.size == 0);
	assert_true(o.generation == 0);
	gcs_object_clear(&o);
	/* A member named twice: the first counts, as cJSON's lookup finds it, whether
	 * or not it is usable; names that only share a first letter are not taken. */
	const char *twice = "{\"name\":\"n\",\"size\":\"7\",\"size\":\"9\",\"sizes\":\"3\","
			    "\"generation\":\"x\",\"generation\":\"4\",\"name\":\"m\","
			    "\"metadata\":5,\"metadata\":{\"gcsfuse_symlink_target\":\"t\"},"
			    "\"crc32\":\"AAAAAA==\",\"componentCount\":\"2\"}";
	assert_int_equal(gcs_object_parse(twice, strlen(twice), &o), 0);
	assert_string_equal(o.name, "n");
	assert_true(o.size == 7);
	assert_true(o.generation == 0);
	assert_false(o.is_symlink);
	assert_false(o.has_crc32c);
	assert_int_equal(o.component_count, 2);
	gcs_object_clear(&o);
	/* 64-bit numbers as strings: digits only, below 2^64. */
	const struct {
		const char *size;
		uint64_t want;
	} sizes[] = {{"18446744073709551615", UINT64_MAX}, {"18446744073709551616", 0},
		     {"007", 7}, {"+5", 0}, {" 5", 0}, {"5 ", 0}, {"", 0}, {"1e3", 0},
		     {"99999999999999999999", 0}};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char j[128];
		snprintf(j, sizeof(j), "{\"name\":\"n\",\"size\":\"%s\"}", sizes[i].size);
		assert_int_equal(gcs_object_parse(j, strlen(j), &o), 0);
		assert_true(o.size == sizes[i].want);
		gcs_object_clear(&o);
	}
}

static void test_list_parse(void **state)
{
	(void)state;
	const char *j = "{\"kind\":\"storage#objects\",\"nextPageToken\":\"tok\","
			"\"prefixes\":[\"p/a/\",\"p/b/\"],"
			"\"items\":[{\"name\":\"p/f1\",\"size\":\"1\"},{\"bogus\":1},{\"name\":\"p/f2\",\"size\":\"2\"}]}";
	struct gcs_list_page p;
	assert_int_equal(gcs_list_parse(j, strlen(j), &p), 0);
	assert_int_equal(p.nitems, 2);
	assert_int_equal(p.nprefixes, 2);
	assert_string_equal(p.items[1].name, "p/f2");
	assert_string_equal(p.prefixes[0], "p/a/");
	assert_string_equal(p.next_page_token, "tok");
	gcs_list_page_free(&p);
	const char *empty = "{\"kind\":\"storage#objects\"}";
	assert_int_equal(gcs_list_parse(empty, strlen(empty), &p), 0);
	assert_int_equal(p.nitems, 0);
	assert_null(p.next_page_token);
	gcs_list_page_free(&p);
	assert_int_equal(gcs_list_parse("x", 1, &p), -EINVAL);
}

/* gcs_list_token gives the token gcs_list_parse gives, without the parse. */
static void expect_token(const char *json, const char *want)
{
	char *tok = (char *)1;
	assert_int_equal(gcs_list_token(json, strlen(json), &tok), 0);
	if (want)
		assert_string_equal(tok, want);
	else
		assert_null(tok);
	struct gcs_list_page p;
	assert_int_equal(gcs_list_parse(json, strlen(json), &p), 0);
	if (want)
		assert_string_equal(p.next_page_token, want);
	else
		assert_null(p.next_page_token);
	gcs_list_page_free(&p);
	free(tok);
}

static void test_list_token(void **state)
{
	(void)state;
	/* Before, after and between the items; none; empty; not a string. */
	expect_token("{\"nextPageToken\":\"abc\",\"items\":[{\"name\":\"a\"}]}", "abc");
	expect_token("{\"kind\":\"storage#objects\",\"prefixes\":[\"d/\"],\"items\":"
		     "[{\"name\":\"a\",\"metadata\":{\"nextPageToken\":\"no\"}}],"
		     "\"nextPageToken\":\"Q2c=\"}", "Q2c=");
	expect_token("{\"items\":[{\"name\":\"x\\\"nextPageToken\\\":\\\"no\"}]}", NULL);
	expect_token("{}", NULL);
	expect_token(" \t\r\n{ \"nextPageToken\" : \"\" }", NULL);
	expect_token("{\"nextPageToken\":null,\"items\":[]}", NULL);
	expect_token("{\"nextPageToken\":{\"a\":\"b\"}}", NULL);
	/* Escapes in the value and in the key are decoded; the first key wins. */
	expect_token("{\"nextPageToken\":\"a\\u0062\\/c\"}", "ab/c");
	expect_token("{\"next\\u0050ageToken\":\"k\"}", "k");
	expect_token("{\"nextPageToken\":\"one\",\"nextPageToken\":\"two\"}", "one");
	expect_token("\xEF\xBB\xBF{\"a\":[1,{\"b\":[true,false,null]}],\"nextPageToken\":\"t\"}", "t");
	/* A raw NUL ends a key for cJSON: "nextPageToken\0xyz" is the key too. */
	static const char nul_key[] = "{\"nextPageToken\0xyz\":\"n\"}";
	char *tok = NULL;
	assert_int_equal(gcs_list_token(nul_key, sizeof(nul_key) - 1, &tok), 0);
	assert_string_equal(tok, "n");
	free(tok);
	tok = NULL;
	/* Not an object: the caller parses instead. */
	assert_int_equal(gcs_list_token("[1]", 3, &tok), -EINVAL);
	assert_int_equal(gcs_list_token("{\"a\":", 5, &tok), -EINVAL);
	assert_int_equal(gcs_list_token("{\"a\":\"b", 7, &tok), -EINVAL);
	assert_int_equal(gcs_list_token("", 0, &tok), -EINVAL);
	assert_null(tok);
}

static void test_error_parse(void **state)
{
	(void)state;
	char msg[100];
	const char *g = "{\"error\":{\"code\":404,\"message\":\"No such object: b/o\"}}";
	gcs_error_parse(g, strlen(g), msg, sizeof(msg));
	assert_string_equal(msg, "No such object: b/o");
	const char *oauth = "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT\"}";
	gcs_error_parse(oauth, strlen(oauth), msg, sizeof(msg));
	assert_string_equal(msg, "Invalid JWT");
	const char *html = "<html>\nBad Gateway\n";
	gcs_error_parse(html, strlen(html), msg, sizeof(msg));
	assert_string_equal(msg, "<html>");
	gcs_error_parse(NULL, 0, msg, sizeof(msg));
	assert_string_equal(msg, "");
}

static void test_range(void **state)
{
	(void)state;
	uint64_t n = 99;
	assert_int_equal(gcs_parse_range("bytes=0-262143", &n), 0);
	assert_true(n == 262144);
	assert_int_equal(gcs_parse_range("", &n), 0);
	assert_true(n == 0);
	assert_int_equal(gcs_parse_range("bytes=5-10", &n), -EINVAL);
	assert_int_equal(gcs_parse_range("bytes=0-", &n), -EINVAL);
	assert_int_equal(gcs_parse_range("bytes=0-1x", &n), -EINVAL);
	assert_int_equal(gcs_parse_range("items=0-1", &n), -EINVAL);
}

static void test_errno_table(void **state)
{
	(void)state;
	assert_int_equal(gcs_errno_for_status(404), -ENOENT);
	assert_int_equal(gcs_errno_for_status(412), -ESTALE);
	assert_int_equal(gcs_errno_for_status(403), -EACCES);
	assert_int_equal(gcs_errno_for_status(503), -EIO);
	assert_int_equal(gcs_errno_for_status(418), -EIO);
}

static void test_name_check(void **state)
{
	(void)state;
	char big[1100];
	memset(big, 'a', sizeof(big));
	assert_int_equal(gcs_name_check("run/a b/ü€😀.txt", strlen("run/a b/ü€😀.txt")), 0);
	assert_int_equal(gcs_name_check(big, 1024), 0);
	assert_int_equal(gcs_name_check(big, 1025), -ENAMETOOLONG);
	assert_int_equal(gcs_name_check("", 0), -EINVAL);
	assert_int_equal(gcs_name_check("a\nb", 3), -EINVAL);
	assert_int_equal(gcs_name_check("a\rb", 3), -EINVAL);
	assert_int_equal(gcs_name_check("\xff", 1), -EINVAL);
	assert_int_equal(gcs_name_check("\xc3", 1), -EINVAL);           /* truncated */
	assert_int_equal(gcs_name_check("\xc0\xaf", 2), -EINVAL);       /* overlong '/' */
	assert_int_equal(gcs_name_check("\xed\xa0\x80", 3), -EINVAL);   /* surrogate */
	assert_int_equal(gcs_name_check("\xf4\x90\x80\x80", 4), -EINVAL); /* > U+10FFFF */
}

/* Every day from 1600 to 2400 (leap rules of 1700, 1900, 2000, 2100 included)
 * agrees with the C library's timegm. */
static void test_rfc3339_agrees_with_timegm(void **state)
{
	(void)state;
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	for (int y = 1600; y <= 2400; y++) {
		int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		for (int m = 1; m <= 12; m++) {
			int last = mdays[m - 1] + (m == 2 && leap);
			for (int d = 1; d <= last; d++) {
				char text[40];
				snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d,
					 d % 24, (d * 7) % 60, (d * 13) % 60);
				struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d,
						.tm_hour = d % 24, .tm_min = (d * 7) % 60,
						.tm_sec = (d * 13) % 60};
				struct timespec ts;
				assert_int_equal(gcs_parse_rfc3339(text, &ts), 0);
				assert_int_equal(ts.tv_sec, timegm(&tm));
			}
		}
	}
}

static void test_rfc3339(void **state)
{
	(void)state;
	struct timespec ts;
	assert_int_equal(gcs_parse_rfc3339("1970-01-01T00:00:00Z", &ts), 0);
	assert_int_equal(ts.tv_sec, 0);
	assert_int_equal(gcs_parse_rfc3339("2020-09-13T12:26:40.123456789Z", &ts), 0);
	assert_int_equal(ts.tv_sec, 1600000000);
	assert_int_equal(ts.tv_nsec, 123456789);
	assert_int_equal(gcs_parse_rfc3339("2020-09-13T14:26:40.1+02:00", &ts), 0);
	assert_int_equal(ts.tv_sec, 1600000000);
	assert_int_equal(ts.tv_nsec, 100000000);
	assert_int_equal(gcs_parse_rfc3339("2020-09-13T12:26:40.1234567891234Z", &ts), 0);
	assert_int_equal(ts.tv_nsec, 123456789);
	const char *bad[] = {"", "2020-13-01T00:00:00Z", "2020-01-01T00:00:00", "2020-01-01T00:00:00.Z",
			     "2020-01-01T00:00:00Zjunk", "2020-01-01 00:00:00Z", "garbage",
			     " 2020-01-01T00:00:00Z", "2020-1-01T00:00:00Z", "+020-01-01T00:00:00Z",
			     "2020-01-01T00:00:00+0200", "2020-01-01T00:00:00+02:", "2020-01-01T24:00:00Z",
			     "2020-01-01T00:00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(gcs_parse_rfc3339(bad[i], &ts), -EINVAL);
}

int main(void)
{
	/* Listings parse in the reused-block arena, as in the mount (plain builds). */
	gcs_json_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_object_parse),
		cmocka_unit_test(test_mtime_precedence),
		cmocka_unit_test(test_object_parse_bad),
		cmocka_unit_test(test_list_parse),
		cmocka_unit_test(test_list_token),
		cmocka_unit_test(test_error_parse),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_errno_table),
		cmocka_unit_test(test_name_check),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_rfc3339_agrees_with_timegm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
