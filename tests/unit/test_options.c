/* Unit tests of the command line (fs/options.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "fs/options.h"

static int parse(struct mount_opts *o, char *err, int argc, char **argv)
{
	opts_defaults(o);
	return opts_parse(argc, argv, o, err, 256);
}

static void test_basic(void **state)
{
	(void)state;
	struct mount_opts o;
	char err[256];
	char *argv[] = {"gcsmount", "-f", "-o", "endpoint=http://h:1,anonymous,uid=5,gid=6",
			"gs://my-bucket/a/b/", "/mnt", "-o", "file_mode=0600,chunk_size=8M,allow_other",
			NULL};
	assert_int_equal(parse(&o, err, 8, argv), 0);
	assert_string_equal(o.bucket, "my-bucket");
	assert_string_equal(o.prefix, "a/b");
	assert_string_equal(o.mountpoint, "/mnt");
	assert_true(o.foreground);
	assert_true(o.anonymous);
	assert_string_equal(o.endpoint, "http://h:1");
	assert_int_equal(o.uid, 5);
	assert_int_equal(o.gid, 6);
	assert_int_equal(o.file_mode, 0600);
	assert_true(o.chunk_size == 8u << 20);
	assert_string_equal(o.fuse_opts.data, "allow_other");
	opts_free(&o);
}

static void test_mount_helper_style(void **state)
{
	(void)state;
	struct mount_opts o;
	char err[256];
	char *argv[] = {"gcsmount", "bucket", "/mnt", "-o",
			"rw,nodev,nosuid,_netdev,nofail,x-systemd.automount,stat_ttl=1.5", NULL};
	assert_int_equal(parse(&o, err, 5, argv), 0);
	assert_string_equal(o.bucket, "bucket");
	assert_string_equal(o.prefix, "");
	assert_false(o.foreground);
	assert_true(o.stat_ttl == 1.5);
	assert_string_equal(o.fuse_opts.data, "rw,nodev,nosuid");
	opts_free(&o);
}

static void test_errors(void **state)
{
	(void)state;
	struct {
		const char *opt;
		const char *needle;
	} cases[] = {
		{"nonsense", "unknown option 'nonsense'"},
		{"chunk_size=100", "chunk_size"},
		{"chunk_size=", "needs a value"},
		{"uid=-1", "malformed"},
		{"file_mode=999", "malformed"},
		{"stat_ttl=abc", "malformed"},
		{"stat_ttl=-1", "malformed"},
		{"endpoint=ftp://x", "http"},
		{"anonymous=1", "unknown option"},
		{"progress=1", "unknown option"},
		{"noprogress=yes", "unknown option"},
		{"anonymous,key_file=/k", "anonymous"},
		{"key_file=/a,token_file=/b", "exclude"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mount_opts o;
		char err[256];
		char *argv[] = {"gcsmount", "-o", (char *)cases[i].opt, "bkt", "/mnt", NULL};
		assert_int_equal(parse(&o, err, 5, argv), -EINVAL);
		if (!strstr(err, cases[i].needle))
			fail_msg("'%s': error '%s' lacks '%s'", cases[i].opt, err, cases[i].needle);
		opts_free(&o);
	}
	struct mount_opts o;
	char err[256];
	char *a1[] = {"gcsmount", "bkt", NULL};
	assert_int_equal(parse(&o, err, 2, a1), -EINVAL);
	assert_non_null(strstr(err, "usage"));
	opts_free(&o);
	char *a2[] = {"gcsmount", "gs://UPPER", "/m", NULL};
	assert_int_equal(parse(&o, err, 3, a2), -EINVAL);
	opts_free(&o);
	char *a3[] = {"gcsmount", "gs://ok-bucket/a//x", "/m", NULL};
	assert_int_equal(parse(&o, err, 3, a3), -EINVAL);
	opts_free(&o);
	/* Names GCS refuses, and prefixes a directory could not show. */
	static const char *const bad_sources[] = {
		"gs://-bucket", "gs://bucket-", "gs://b..x", "gs://.bkt",
		"gs://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"gs://bkt//x", "gs://bkt/../x", "gs://bkt/a/./b", "gs://bkt/a/..",
	};
	for (size_t i = 0; i < sizeof(bad_sources) / sizeof(bad_sources[0]); i++) {
		char *a[] = {"gcsmount", (char *)bad_sources[i], "/m", NULL};
		if (parse(&o, err, 3, a) != -EINVAL)
			fail_msg("'%s' was taken", bad_sources[i]);
		opts_free(&o);
	}
	static const char *const good_sources[] = {
		"gs://my.dotted.bucket/run", "gs://b_1/a/b/", "gs://bkt/.hidden/x",
		"gs://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b",
	};
	for (size_t i = 0; i < sizeof(good_sources) / sizeof(good_sources[0]); i++) {
		char *a[] = {"gcsmount", (char *)good_sources[i], "/m", NULL};
		if (parse(&o, err, 3, a) != 0)
			fail_msg("'%s' refused: %s", good_sources[i], err);
		opts_free(&o);
	}
	char *a4[] = {"gcsmount", "a", "b", "c", NULL};
	assert_int_equal(parse(&o, err, 4, a4), -EINVAL);
	opts_free(&o);
	char *a5[] = {"gcsmount", "-o", NULL};
	assert_int_equal(parse(&o, err, 2, a5), -EINVAL);
	opts_free(&o);
}

static void test_sizes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(opts_parse_size("16M", &v), 0);
	assert_true(v == 16u << 20);
	assert_int_equal(opts_parse_size("1G", &v), 0);
	assert_true(v == 1u << 30);
	assert_int_equal(opts_parse_size("256KiB", &v), 0);
	assert_true(v == 256u << 10);
	assert_int_equal(opts_parse_size("123", &v), 0);
	assert_true(v == 123);
	assert_int_equal(opts_parse_size("", &v), -EINVAL);
	assert_int_equal(opts_parse_size("12Q", &v), -EINVAL);
	assert_int_equal(opts_parse_size("-1", &v), -EINVAL);
	assert_int_equal(opts_parse_size("99999999999999999999G", &v), -EINVAL);
	assert_int_equal(opts_parse_size("18014398509481984G", &v), -EINVAL);
}

static void test_progress(void **state)
{
	(void)state;
	struct mount_opts o;
	char err[256];
	char *a[] = {"gcsmount", "bkt", "/m", NULL};
	assert_int_equal(parse(&o, err, 3, a), 0);
	assert_int_equal(o.progress, -1); /* on when stderr is a terminal */
	opts_free(&o);
	char *b[] = {"gcsmount", "-o", "progress", "bkt", "/m", NULL};
	assert_int_equal(parse(&o, err, 5, b), 0);
	assert_int_equal(o.progress, 1);
	opts_free(&o);
	char *c[] = {"gcsmount", "-o", "progress,debug", "bkt", "/m", "-o", "noprogress", NULL};
	assert_int_equal(parse(&o, err, 7, c), 0);
	assert_int_equal(o.progress, 0); /* the last one wins */
	assert_true(o.debug);
	opts_free(&o);
}

static void test_help_version(void **state)
{
	(void)state;
	struct mount_opts o;
	char err[256];
	char *a[] = {"gcsmount", "--version", NULL};
	assert_int_equal(parse(&o, err, 2, a), 0);
	assert_true(o.show_version);
	opts_free(&o);
	char *b[] = {"gcsmount", "-h", NULL};
	assert_int_equal(parse(&o, err, 2, b), 0);
	assert_true(o.show_help);
	opts_free(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_mount_helper_style),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_help_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
