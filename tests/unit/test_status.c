/* Unit tests of fs/status: printing the status text a mount answers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/status.h"

/* status_print's output and exit status for text. */
static int print(const char *text, char **out)
{
	size_t len;
	FILE *f = open_memstream(out, &len);
	int rc = status_print(text, strlen(text), f);
	fclose(f);
	return rc;
}

static void test_clean(void **state)
{
	(void)state;
	char *out;
	assert_int_equal(print("gcsmount-status 1\nsource gs://b/run\npending 0\n", &out), 0);
	assert_string_equal(out, "gs://b/run: everything written is in the bucket\n");
	free(out);
}

static void test_pending(void **state)
{
	(void)state;
	char *out;
	const char *text = "gcsmount-status 1\n"
			   "source gs://b\n"
			   "pending 3\n"
			   "file 20971520 4194304 3.2 uploading big.bin\n"
			   "file 5000 5000 125.0 spooled  lead space\n"
			   "error upload run/x: HTTP 503: Service Unavailable\n";
	assert_int_equal(print(text, &out), 1);
	assert_non_null(strstr(out, "gs://b: 3 files not yet entirely in the bucket\n"));
	assert_non_null(strstr(out, "        SIZE   NOT IN GCS      AGE  STATE      FILE\n"));
	assert_non_null(strstr(out, "    20971520      4194304     3.2s  uploading  big.bin\n"));
	assert_non_null(strstr(out, "        5000         5000    2m05s  spooled     lead space\n"));
	assert_non_null(strstr(out, "last error: upload run/x: HTTP 503: Service Unavailable\n"));
	assert_non_null(strstr(out, "... and 1 more\n"));
	free(out);
}

static void test_not_a_status(void **state)
{
	(void)state;
	char *out;
	assert_int_equal(print("", &out), 2);
	free(out);
	assert_int_equal(print("something else\npending 0\n", &out), 2);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_pending),
		cmocka_unit_test(test_not_a_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
