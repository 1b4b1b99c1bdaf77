/* Unit tests of auth/token: the refresh margin, the token cache with a fake clock and fetch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "auth/exchange.h"
#include "auth/token.h"
#include "common/buf.h"
#include "common/log.h"

static void test_margin(void **state)
{
	(void)state;
	assert_int_equal(token_margin_ms(3600 * 1000), 300 * 1000);      /* 1 h: 5 min */
	assert_int_equal(token_margin_ms(1200 * 1000), 300 * 1000);      /* 20 min: 5 min */
	assert_int_equal(token_margin_ms(600 * 1000), 150 * 1000);       /* 10 min: 1/4 */
	assert_int_equal(token_margin_ms(60 * 1000), 15 * 1000);
	assert_int_equal(token_margin_ms(1000), 250);
	assert_int_equal(token_margin_ms(0), 0);
	assert_int_equal(token_margin_ms(-5), 0);
}

static int64_t fake_now;
static int64_t fake_clock(void) { return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST); }
static void fake_advance(int64_t ms) { __atomic_add_fetch(&fake_now, ms, __ATOMIC_SEQ_CST); }

struct fake {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	int rc;                 /* what the next fetch returns */
	long life;
	int block;              /* fetch waits until block == 0 */
	int in_fetch;
	int sleep_ms;
};

static int fake_fetch(void *ctx, struct buf *token, long *life, char *err, size_t errlen)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->mu);
	int n = ++f->calls;
	f->in_fetch = 1;
	pthread_cond_broadcast(&f->cv);
	while (f->block)
		pthread_cond_wait(&f->cv, &f->mu);
	int rc = f->rc;
	long l = f->life;
	int sl = f->sleep_ms;
	pthread_mutex_unlock(&f->mu);
	if (sl)
		token_sleep_ms(sl);
	pthread_mutex_lock(&f->mu);
	f->in_fetch = 0;
	pthread_mutex_unlock(&f->mu);
	if (rc) {
		snprintf(err, errlen, "fake failure %d", n);
		return rc;
	}
	buf_printf(token, "tok-%d", n);
	*life = l;
	return 0;
}

static void fake_init(struct fake *f, struct token_cache *c)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->life = 3600;
	fake_now = 1000000;
	token_cache_init(c, fake_fetch, f);
	c->now_ms = fake_clock;
}

static void fake_destroy(struct fake *f, struct token_cache *c)
{
	token_cache_destroy(c);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
}

static int fake_calls(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	int n = f->calls;
	pthread_mutex_unlock(&f->mu);
	return n;
}

static void get_is(struct token_cache *c, const char *want)
{
	char out[128], err[256] = "";
	int rc = token_cache_get(c, out, sizeof(out), err, sizeof(err));
	if (rc)
		fail_msg("token_cache_get: %d %s", rc, err);
	char full[128];
	snprintf(full, sizeof(full), "Authorization: Bearer %s", want);
	assert_string_equal(out, full);
}

static void test_cache_refresh_ahead(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	get_is(&c, "tok-1");
	get_is(&c, "tok-1");
	fake_advance(3600 * 1000 - 300 * 1000 - 1); /* 1 ms before the margin */
	get_is(&c, "tok-1");
	assert_int_equal(fake_calls(&f), 1);
	fake_advance(1);                             /* in the margin: refresh */
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 2);
	/* short-lived token: margin is a quarter */
	f.life = 100;
	fake_advance(3600 * 1000);
	get_is(&c, "tok-3");
	fake_advance(74 * 1000);
	get_is(&c, "tok-3");
	fake_advance(1000);
	get_is(&c, "tok-4");
	fake_destroy(&f, &c);
}

struct getter {
	struct token_cache *c;
	pthread_barrier_t *bar;
	char out[128];
	int rc;
	int64_t waited_ms;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	char err[256];
	if (g->bar)
		pthread_barrier_wait(g->bar);
	int64_t t0 = token_monotonic_ms();
	g->rc = token_cache_get(g->c, g->out, sizeof(g->out), err, sizeof(err));
	g->waited_ms = token_monotonic_ms() - t0;
	return NULL;
}

/* While one caller refreshes inside the margin, the others use the
 * still-valid token without waiting. */
static void test_cache_stale_while_refresh(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	get_is(&c, "tok-1");
	fake_advance(3500 * 1000);   /* in the margin, not expired */
	f.block = 1;
	struct getter g = {.c = &c};
	pthread_t th;
	pthread_create(&th, NULL, getter_main, &g);
	pthread_mutex_lock(&f.mu);
	while (!f.in_fetch)
		pthread_cond_wait(&f.cv, &f.mu);
	pthread_mutex_unlock(&f.mu);
	/* the refresh is in flight and blocked: others get tok-1 at once */
	for (int i = 0; i < 5; i++)
		get_is(&c, "tok-1");
	assert_int_equal(fake_calls(&f), 2);
	pthread_mutex_lock(&f.mu);
	f.block = 0;
	pthread_cond_broadcast(&f.cv);
	pthread_mutex_unlock(&f.mu);
	pthread_join(th, NULL);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.out, "Authorization: Bearer tok-2");
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 2);
	fake_destroy(&f, &c);
}

/* 16 threads at the moment of expiry: exactly one fetch, all get it. */
static void test_cache_single_flight_at_expiry(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	get_is(&c, "tok-1");
	fake_advance(3600 * 1000);   /* expired */
	f.sleep_ms = 100;
	enum { N = 16 };
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, N);
	struct getter g[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		g[i] = (struct getter){.c = &c, .bar = &bar};
		pthread_create(&th[i], NULL, getter_main, &g[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	assert_int_equal(fake_calls(&f), 2);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].rc, 0);
		assert_string_equal(g[i].out, "Authorization: Bearer tok-2");
	}
	fake_destroy(&f, &c);
}

static void test_cache_failures(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	char out[128], err[256];

	/* first fetch fails: the error comes back */
	f.rc = -EACCES;
	assert_int_equal(token_cache_get(&c, out, sizeof(out), err, sizeof(err)), -EACCES);
	assert_string_equal(err, "fake failure 1");
	/* within TOKEN_FAIL_HOLD_MS the failure is shared, no new fetch */
	assert_int_equal(token_cache_get(&c, out, sizeof(out), err, sizeof(err)), -EACCES);
	assert_int_equal(fake_calls(&f), 1);
	fake_advance(TOKEN_FAIL_HOLD_MS);
	f.rc = 0;
	get_is(&c, "tok-2");

	/* a failed early refresh keeps the valid token and waits before retrying */
	fake_advance(3500 * 1000);
	f.rc = -EIO;
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 3);
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 3);
	fake_advance(TOKEN_RETRY_AFTER_MS);
	f.rc = 0;
	get_is(&c, "tok-4");

	/* expired and the endpoint down: waiters share the one failure */
	fake_advance(3600 * 1000);
	f.rc = -EIO;
	f.sleep_ms = 50;
	enum { N = 8 };
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, N);
	struct getter g[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		g[i] = (struct getter){.c = &c, .bar = &bar};
		pthread_create(&th[i], NULL, getter_main, &g[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < N; i++)
		assert_int_equal(g[i].rc, -EIO);
	assert_int_equal(fake_calls(&f), 5);
	fake_destroy(&f, &c);
}

static void test_cache_invalidate(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	get_is(&c, "tok-1");
	token_cache_invalidate(&c, "Authorization: Bearer tok-other");
	get_is(&c, "tok-1");
	assert_int_equal(fake_calls(&f), 1);
	token_cache_invalidate(&c, "Authorization: Bearer tok-1");
	get_is(&c, "tok-2");
	/* a late 401 for the old token does not throw away the new one */
	token_cache_invalidate(&c, "Authorization: Bearer tok-1");
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 2);
	fake_destroy(&f, &c);
}

/* A token the server refused is replaced at once, but its replacement,
 * refused too, is not replaced again within TOKEN_FAIL_HOLD_MS. */
static void test_cache_refused_replacement_limit(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	char out[128], err[256];
	get_is(&c, "tok-1");
	token_cache_invalidate(&c, "Authorization: Bearer tok-1");
	get_is(&c, "tok-2");
	token_cache_invalidate(&c, "Authorization: Bearer tok-2");
	for (int i = 0; i < 50; i++) {
		assert_int_equal(token_cache_get(&c, out, sizeof(out), err, sizeof(err)), -EACCES);
		assert_non_null(strstr(err, "refused (HTTP 401)"));
	}
	assert_int_equal(fake_calls(&f), 2);
	fake_advance(TOKEN_FAIL_HOLD_MS - 1);
	assert_int_equal(token_cache_get(&c, out, sizeof(out), err, sizeof(err)), -EACCES);
	fake_advance(1);
	get_is(&c, "tok-3");
	/* a token that served for a while and is then refused is replaced at once */
	fake_advance(10 * 1000);
	token_cache_invalidate(&c, "Authorization: Bearer tok-3");
	get_is(&c, "tok-4");
	assert_int_equal(fake_calls(&f), 4);
	fake_destroy(&f, &c);
}

/* An answer that says the token has already expired: the token is used, for
 * TOKEN_EXPIRED_USE_S at most, and the note says why it may be refused. */
static void test_cache_expired_answer(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	char note[256];
	f.life = 0;
	get_is(&c, "tok-1");
	token_cache_note(&c, note, sizeof(note));
	assert_non_null(strstr(note, "already expired"));
	int64_t margin = token_margin_ms(TOKEN_EXPIRED_USE_S * 1000);
	fake_advance(TOKEN_EXPIRED_USE_S * 1000 - margin - 1);
	get_is(&c, "tok-1");
	assert_int_equal(fake_calls(&f), 1);
	fake_advance(1);
	f.life = -300;
	get_is(&c, "tok-2");
	f.life = 3600;
	fake_advance(TOKEN_EXPIRED_USE_S * 1000);
	get_is(&c, "tok-3");
	token_cache_note(&c, note, sizeof(note));
	assert_string_equal(note, "");
	assert_int_equal(fake_calls(&f), 3);
	fake_destroy(&f, &c);
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_margin),
		cmocka_unit_test(test_cache_refresh_ahead),
		cmocka_unit_test(test_cache_stale_while_refresh),
		cmocka_unit_test(test_cache_single_flight_at_expiry),
		cmocka_unit_test(test_cache_failures),
		cmocka_unit_test(test_cache_invalidate),
		cmocka_unit_test(test_cache_refused_replacement_limit),
		cmocka_unit_test(test_cache_expired_answer),
	};
	return cmocka_run_group_tests_name("auth: refresh margin, token cache", tests, NULL, NULL);
}
