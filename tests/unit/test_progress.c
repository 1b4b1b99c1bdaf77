/* Unit tests of the progress line: its text (fs/progress.c) and the totals
 * of the uploads under way it is made from (fs/uploader.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "fs/progress.h"
#include "fs/uploader.h"
#include "fs/writer.h"

#define MiB (1024ull * 1024)

static void test_size(void **state)
{
	(void)state;
	char s[32];
	progress_size(0, s, sizeof(s));
	assert_string_equal(s, "0 B");
	progress_size(1023, s, sizeof(s));
	assert_string_equal(s, "1023 B");
	progress_size(1536, s, sizeof(s));
	assert_string_equal(s, "1.5 KiB");
	progress_size(210 * MiB, s, sizeof(s));
	assert_string_equal(s, "210.0 MiB");
	progress_size(4ull << 30, s, sizeof(s));
	assert_string_equal(s, "4.0 GiB");
	progress_size(UINT64_MAX, s, sizeof(s));
	assert_string_equal(s, "16384.0 PiB");
}

static void test_text(void **state)
{
	(void)state;
	char line[160];
	struct upload_totals t = {.files = 3, .bytes = 4ull << 30, .done = 1288490189,
				  .files_done = 7, .bytes_done = 10 * MiB};
	progress_text(&t, 0, 0, 0, 210 * MiB, line, sizeof(line));
	assert_string_equal(line, "uploading 3 files, 1.2 GiB of 4.0 GiB, 210.0 MiB/s");
	t.files = 1;
	progress_text(&t, 0, 0, 0, -1, line, sizeof(line));
	assert_string_equal(line, "uploading 1 file, 1.2 GiB of 4.0 GiB");
	/* The final flush counts from its start: 2 files done since, 4 MiB
	 * confirmed since, and what the upload under way still has to send. */
	struct upload_totals f = {.files = 1, .bytes = 8 * MiB, .done = 3 * MiB,
				  .files_done = 9, .bytes_done = 14 * MiB};
	progress_text(&f, 1, 7, 10 * MiB, 1024, line, sizeof(line));
	assert_string_equal(line, "saving outputs: 3 files, 4.0 MiB of 9.0 MiB, 1.0 KiB/s");
	progress_summary("gs://b/runs/1", 3, 9 * MiB, 4.04, line, sizeof(line));
	assert_string_equal(line, "gcsmount: outputs saved to gs://b/runs/1: 3 files, 9.0 MiB "
			    "uploaded in 4.0 s after the command ended");
	progress_summary("gs://b", 0, 0, 0.01, line, sizeof(line));
	assert_string_equal(line, "gcsmount: outputs saved to gs://b (all uploaded while the "
			    "command ran)");
}

static int idle_calls;

static void count_idle(void *arg)
{
	(void)arg;
	idle_calls++;
}

static void test_totals(void **state)
{
	(void)state;
	struct uploader up;
	assert_int_equal(uploader_start(&up, 1, 64 * MiB), 0);
	uploader_on_idle(&up, count_idle, NULL);
	struct writer a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	struct upload_totals t;
	uploader_totals(&up, &t);
	assert_int_equal(t.files, 0);

	/* a: a new file streaming; 4 MiB of 10 confirmed. */
	a.size = 10 * MiB;
	uploader_track(&up, &a, 0, 0);
	uploader_confirmed(&up, &a, 4 * MiB);
	/* b: an append to a 100 MiB object, 1 MiB of its 3 MiB tail sent earlier. */
	b.size = 103 * MiB;
	uploader_track(&up, &b, 100 * MiB, 101 * MiB);
	uploader_totals(&up, &t);
	assert_int_equal(t.files, 2);
	assert_true(t.bytes == 13 * MiB);
	assert_true(t.done == 5 * MiB);
	assert_true(t.bytes_done == 4 * MiB); /* b's earlier megabyte is not new */
	assert_true(t.longest >= 0 && t.longest < 60);

	/* Between two chunks a still counts; its next chunk carries on. */
	uploader_pause(&up, &a);
	uploader_totals(&up, &t);
	assert_int_equal(t.files, 2);
	int64_t since = a.up_since;
	uploader_track(&up, &a, 0, 4 * MiB);
	assert_true(a.up_since == since);
	uploader_confirmed(&up, &a, 8 * MiB);
	uploader_confirmed(&up, &a, 6 * MiB); /* never backwards */
	uploader_totals(&up, &t);
	assert_true(t.done == 9 * MiB && t.bytes_done == 8 * MiB);

	/* Paused longer than the grace: idle, not counted. */
	uploader_pause(&up, &a);
	a.up_paused -= (int64_t)(2 * UPLOAD_PAUSE_GRACE_S * 1e9);
	uploader_totals(&up, &t);
	assert_int_equal(t.files, 1);
	/* Its next upload starts afresh: a whole re-upload from 0. */
	uploader_track(&up, &a, 0, 0);
	assert_true(a.up_since != since);
	uploader_totals(&up, &t);
	assert_int_equal(t.files, 2);
	assert_true(t.done == 1 * MiB);

	/* b ends, published; a is still sending: not idle yet. */
	idle_calls = 0;
	uploader_untrack(&up, &b, 1);
	assert_int_equal(idle_calls, 0);
	uploader_untrack(&up, &a, 0);
	assert_int_equal(idle_calls, 1);
	uploader_untrack(&up, &a, 0); /* not on the list: nothing */
	assert_int_equal(idle_calls, 1);
	uploader_totals(&up, &t);
	assert_int_equal(t.files, 0);
	assert_true(t.files_done == 1 && t.bytes_done == 8 * MiB);
	uploader_stop(&up);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_totals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
