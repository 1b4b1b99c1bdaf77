/* Unit tests of the spool: journal text both ways, entries on disk. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/spool.h"

static void test_text_round_trip(void **state)
{
	(void)state;
	struct spool_state st = {
		.object = "run/a \"b\"/ü.bin", .base_gen = 1700000000123456, .base_size = 5ull << 32,
		.staged = 0, .session = "http://h/upload?upload_id=x&y=1",
		.session_object = "run/.gcsmount-tmp/ab", .sent = 262144, .closing = 1,
		.mtime_sec = 1600000000, .mtime_nsec = 123456789,
	};
	char *text = spool_state_to_text(&st);
	struct spool_state back;
	assert_int_equal(spool_state_from_text(text, strlen(text), &back), 0);
	assert_string_equal(back.object, st.object);
	assert_true(back.base_gen == st.base_gen);
	assert_true(back.base_size == st.base_size);
	assert_string_equal(back.session, st.session);
	assert_string_equal(back.session_object, st.session_object);
	assert_true(back.sent == 262144);
	assert_true(back.closing);
	assert_false(back.staged);
	assert_false(back.conflict);
	assert_int_equal(back.mtime_sec, 1600000000);
	assert_int_equal(back.mtime_nsec, 123456789);
	spool_state_clear(&back);
	free(text);
	/* A file that lost a conflict says so, and keeps saying so. */
	st.conflict = 1;
	text = spool_state_to_text(&st);
	assert_int_equal(spool_state_from_text(text, strlen(text), &back), 0);
	assert_true(back.conflict);
	spool_state_clear(&back);
	free(text);
}

static void test_text_bad(void **state)
{
	(void)state;
	const char *bad[] = {"", "object a\n", "gcsmount-journal 1\n",
			     "gcsmount-journal 1\nobject \n", "gcsmount-journal 2\nobject a\n",
			     "gcsmount-journal 1\nobject a\nsent -1\n",
			     "gcsmount-journal 1\nobject a\nbase_gen x\n",
			     "gcsmount-journal 1\nobject a\nsession s\n",
			     "gcsmount-journal 1\nobject a\nclosing 2\n",
			     "gcsmount-journal 1\nobject a", "gcsmount-journal 1\nnospace\n",
			     "gcsmount-journal 1\nobject a\nmtime 5.12\n",
			     "gcsmount-journal 3\nobject a\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct spool_state st;
		assert_int_equal(spool_state_from_text(bad[i], strlen(bad[i]), &st), -EINVAL);
	}
}

/* The end line: what follows it is ignored, a sum that does not match is refused,
 * and a journal of an older version (no end line) still reads. */
static void test_text_end_line(void **state)
{
	(void)state;
	struct spool_state st = {.object = "run/x", .base_size = 42, .closing = 1};
	char *text = spool_state_to_text(&st);
	size_t len = strlen(text);
	assert_memory_equal(text + len - 14, "\nend ", 5);
	char b[512];
	/* A longer journal's end left behind the rewrite, NUL bytes included. */
	memcpy(b, text, len);
	memcpy(b + len, "sent 99\0\0closing 0\n", 20);
	struct spool_state back;
	assert_int_equal(spool_state_from_text(b, len + 20, &back), 0);
	assert_true(back.base_size == 42 && back.sent == 0 && back.closing);
	spool_state_clear(&back);
	/* Caught half rewritten: another journal's first bytes before this end line. */
	memcpy(b, text, len);
	b[len - 20] ^= 1;
	assert_int_equal(spool_state_from_text(b, len, &back), -EINVAL);
	/* A bad digit in the sum. */
	memcpy(b, text, len);
	b[len - 2] = 'g';
	assert_int_equal(spool_state_from_text(b, len, &back), -EINVAL);
	/* Cut before its end line, at a line's end: a rewrite read half done. */
	const char *cut = strstr(text, "\nclosing");
	assert_int_equal(spool_state_from_text(text, (size_t)(cut - text) + 1, &back), -EINVAL);
	/* Without the end line: an older version's journal. */
	const char *old = "gcsmount-journal 1\nobject run/y\nclosing 1\n";
	assert_int_equal(spool_state_from_text(old, strlen(old), &back), 0);
	assert_string_equal(back.object, "run/y");
	spool_state_clear(&back);
	free(text);
}

static int seen;
static void on_entry(void *arg, const char *id, struct spool_state *st, int fd)
{
	(void)arg;
	(void)id;
	char buf[8] = {0};
	assert_int_equal(pread(fd, buf, 5, 0), 5);
	assert_string_equal(buf, "hello");
	assert_string_equal(st->object, "run/x");
	close(fd);
	spool_state_clear(st);
	seen++;
}

static void test_entries_on_disk(void **state)
{
	(void)state;
	char root[] = "/tmp/gcsmount-test-spool-XXXXXX";
	assert_non_null(mkdtemp(root));
	struct spool s;
	assert_int_equal(spool_open(&s, root, "endpoint\nbucket\nprefix/"), 0);
	struct stat sb;
	assert_int_equal(stat(s.dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	char id[96];
	int fd;
	assert_int_equal(spool_create(&s, id, sizeof(id), &fd), 0);
	assert_int_equal(pwrite(fd, "hello", 5, 0), 5);
	close(fd);
	struct spool_state st = {.object = "run/x", .closing = 1};
	assert_int_equal(spool_save(&s, id, &st), 0);
	/* A second entry without its data file is skipped, not fatal. */
	char id2[96];
	assert_int_equal(spool_create(&s, id2, sizeof(id2), &fd), 0);
	close(fd);
	assert_int_equal(spool_save(&s, id2, &st), 0);
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s.data", s.dir, id2);
	unlink(path);
	seen = 0;
	assert_int_equal(spool_scan(&s, on_entry, NULL), 2);
	assert_int_equal(seen, 1);
	/* One entry by its id: its journal and data; a missing one is ENOENT. */
	struct spool_state got;
	assert_int_equal(spool_load(&s, id, &got, &fd), 0);
	assert_string_equal(got.object, "run/x");
	assert_int_equal(got.closing, 1);
	char five[5];
	assert_int_equal(pread(fd, five, 5, 0), 5);
	assert_memory_equal(five, "hello", 5);
	close(fd);
	spool_state_clear(&got);
	assert_int_equal(spool_load(&s, id2, &got, &fd), -ENOENT);
	assert_int_equal(spool_load(&s, "no-such-entry", &got, &fd), -ENOENT);
	spool_remove(&s, id);
	spool_remove(&s, id2);
	seen = 0;
	assert_int_equal(spool_scan(&s, on_entry, NULL), 0);
	/* The same key while s holds its directory: the next one, never s's
	 * entries; another key another directory. */
	struct spool s2, s3, s4;
	assert_int_equal(spool_open(&s2, root, "endpoint\nbucket\nprefix/"), 0);
	assert_int_equal(spool_open(&s3, root, "endpoint\nbucket\nother/"), 0);
	char sibling[4200], first[4200];
	snprintf(sibling, sizeof(sibling), "%s-2", s.dir);
	snprintf(first, sizeof(first), "%s", s.dir);
	assert_string_equal(s2.dir, sibling);
	assert_string_not_equal(s.dir, s3.dir);
	/* What the sibling's mount left behind moves to the next holder of the
	 * first directory, which finishes it; the sibling goes. */
	assert_int_equal(spool_create(&s2, id, sizeof(id), &fd), 0);
	assert_int_equal(pwrite(fd, "hello", 5, 0), 5);
	close(fd);
	assert_int_equal(spool_save(&s2, id, &st), 0);
	spool_close(&s2);
	spool_close(&s);
	assert_int_equal(spool_open(&s4, root, "endpoint\nbucket\nprefix/"), 0);
	assert_string_equal(s4.dir, first);
	seen = 0;
	assert_int_equal(spool_scan(&s4, on_entry, NULL), 1);
	assert_int_equal(seen, 1);
	assert_int_not_equal(stat(sibling, &sb), 0);
	spool_remove(&s4, id);
	snprintf(path, sizeof(path), "%s/lock", s3.dir);
	unlink(path);
	rmdir(s3.dir);
	snprintf(path, sizeof(path), "%s/lock", s4.dir);
	unlink(path);
	rmdir(s4.dir);
	spool_close(&s3);
	spool_close(&s4);
	assert_int_equal(rmdir(root), 0);
}

/* A journal rewritten shorter in place reads as the new one; one longer than a page
 * goes by rename and reads back whole. arg: the session expected, or NULL. */
static int seen_sent = -1;
static void on_state(void *arg, const char *id, struct spool_state *st, int fd)
{
	(void)id;
	close(fd);
	seen_sent = (int)st->sent;
	if (arg)
		assert_string_equal(st->session, (const char *)arg);
	else
		assert_null(st->session);
	spool_state_clear(st);
}

static void test_rewritten_in_place(void **state)
{
	(void)state;
	char root[] = "/tmp/gcsmount-test-spool-XXXXXX";
	assert_non_null(mkdtemp(root));
	struct spool s;
	assert_int_equal(spool_open(&s, root, "k"), 0);
	char id[96];
	int fd;
	assert_int_equal(spool_create(&s, id, sizeof(id), &fd), 0);
	close(fd);
	struct spool_state st = {.object = "run/x", .sent = 7,
				 .session = "http://h/upload?upload_id=a-long-session-id-0123456789",
				 .session_object = "run/x"};
	assert_int_equal(spool_save(&s, id, &st), 0);
	st.session = st.session_object = NULL;
	st.sent = 3;
	assert_int_equal(spool_save(&s, id, &st), 0);
	char path[4200];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/%s.journal", s.dir, id);
	assert_int_equal(stat(path, &sb), 0);
	char *text = spool_state_to_text(&st);
	assert_true((size_t)sb.st_size > strlen(text)); /* the old end is still there */
	free(text);
	assert_int_equal(spool_scan(&s, on_state, NULL), 1);
	assert_int_equal(seen_sent, 3);
	/* Past a page: by rename, whole. */
	char *long_uri = malloc(5000);
	memset(long_uri, 'u', 4999);
	long_uri[4999] = '\0';
	st.session = long_uri;
	st.session_object = "run/x";
	st.sent = 5;
	assert_int_equal(spool_save(&s, id, &st), 0);
	assert_int_equal(spool_scan(&s, on_state, long_uri), 1);
	assert_int_equal(seen_sent, 5);
	free(long_uri);
	spool_remove(&s, id);
	rmdir(s.dir);
	spool_close(&s);
	rmdir(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_round_trip),
		cmocka_unit_test(test_text_bad),
		cmocka_unit_test(test_text_end_line),
		cmocka_unit_test(test_rewritten_in_place),
		cmocka_unit_test(test_entries_on_disk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
