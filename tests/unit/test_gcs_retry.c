/*
 * The pace of a series of tries (gcs/client.c gcs_retry_wait): on to the
 * retry deadline itself, the last try at it, and never past the time a
 * shutdown abandons transfers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "common/http.h"
#include "gcs/client_internal.h"

static double mono(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct gcs_client *client(double retry_deadline)
{
	struct gcs_config cfg = {.endpoint = "http://127.0.0.1:9", .bucket = "b",
				 .retry_deadline = retry_deadline};
	struct gcs_client *c = gcs_client_new(&cfg);
	assert_non_null(c);
	return c;
}

/* Waits add up to the deadline itself, whatever the jitter draws. */
static void test_tries_go_on_to_the_deadline(void **state)
{
	(void)state;
	struct gcs_client *c = client(0.8);
	struct gcs_retry r;
	gcs_retry_begin(&r);
	double t0 = mono();
	int waits = 0;
	while (gcs_retry_wait(c, &r))
		waits++;
	double took = mono() - t0;
	assert_true(took >= 0.79 && took < 1.3);
	assert_true(waits >= 2);
	assert_int_equal(gcs_retry_wait(c, &r), 0); /* the try at the deadline was made */
	gcs_client_free(c);
}

/* A wait whose backoff has grown long ends at the abandon time, and no
 * wait follows it. */
static void test_no_wait_past_the_abandon_time(void **state)
{
	(void)state;
	struct gcs_client *c = client(120);
	struct gcs_retry r;
	gcs_retry_begin(&r);
	r.backoff = 30;
	double t0 = mono();
	http_abandon_at(t0 + 0.3);
	for (int k = 0; k < 3 && gcs_retry_wait(c, &r); k++)
		;
	double took = mono() - t0;
	assert_true(took < 0.6);
	assert_int_equal(gcs_retry_wait(c, &r), 0);
	http_abandon_at(0);
	gcs_client_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tries_go_on_to_the_deadline),
		cmocka_unit_test(test_no_wait_past_the_abandon_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
