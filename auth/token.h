/*
 * token: the cached "Authorization: Bearer ..." line and its refresh.
 *
 * A token is refreshed ahead of expiry (token_margin_ms) by one caller at a
 * time. While that refresh is in flight, callers whose token is still valid
 * keep using it without waiting; only callers whose token has actually
 * expired wait for the refresh (and share its outcome). A token the server
 * refused is replaced at once, but not more than once per
 * TOKEN_FAIL_HOLD_MS, so tokens the server will not take cost one fetch a
 * second rather than one per request.
 */
#ifndef GCSMOUNT_AUTH_TOKEN_H
#define GCSMOUNT_AUTH_TOKEN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/secret.h"
#include "common/buf.h"

#define TOKEN_MARGIN_MAX_MS 300000    /* refresh 5 min ahead of expiry... */
#define TOKEN_RETRY_AFTER_MS 5000     /* ...but not more often than this after a failure */
#define TOKEN_FAIL_HOLD_MS 1000       /* an expired token's failure is shared for this long, */
				      /* and a token the server refused is replaced at most */
				      /* once in this long */
#define TOKEN_EXPIRED_USE_S 60        /* a token whose answer said it had already expired */
				      /* is used for this long at most */

/*
 * Fetch a new token into token (the cache wipes it) and its lifetime in
 * seconds. Called by one thread at a time, without the cache lock held.
 * Returns 0 or a negative errno with one line in err. A lifetime <= 0 means
 * the answer said the token had already expired (a clock is off somewhere);
 * err then holds one line naming the source and the value.
 */
typedef int (*token_fetch_fn)(void *ctx, struct buf *token, long *lifetime_s,
			      char *err, size_t errlen);

struct token_cache {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	token_fetch_fn fetch;
	void *ctx;
	int64_t (*now_ms)(void);      /* CLOCK_MONOTONIC in ms; replaceable for tests */

	/* Everything below is guarded by mu. */
	struct secret header;         /* "Authorization: Bearer TOKEN", or empty */
	int64_t refresh_at;           /* refresh from here on (expires_at - margin) */
	int64_t expires_at;           /* unusable from here on */
	int64_t retry_at;             /* no early refresh before this (after a failure) */
	int refreshing;               /* a fetch is in flight */
	unsigned long attempts;       /* fetches finished (success or not) */
	int last_rc;                  /* outcome of the last fetch */
	int64_t last_fail_at;
	char last_err[512];
	unsigned long fetches_ok;
	int refused;                  /* the server answered 401 to the current token */
	int64_t replaced_refused_at;  /* start of the last fetch that replaced a refused token */
	char expired_note[256];       /* the current token's answer said it had already
				       * expired: that answer, named; else "" */
};

/* The refresh margin for a token that lives lifetime_ms: min(5 min, 1/4). */
int64_t token_margin_ms(int64_t lifetime_ms);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t token_monotonic_ms(void);

void token_cache_init(struct token_cache *c, token_fetch_fn fetch, void *ctx);
void token_cache_destroy(struct token_cache *c);

/* Write the header line into out. 0, or a negative errno with one line in
 * err (-ERANGE when out is too small). */
int token_cache_get(struct token_cache *c, char *out, size_t outlen, char *err, size_t errlen);

/* Mark the token expired if its header line equals rejected (the server
 * refused it). */
void token_cache_invalidate(struct token_cache *c, const char *rejected);

/* What is known against the current token, for an error line: "" or the
 * note that its answer said it had already expired. */
void token_cache_note(struct token_cache *c, char *out, size_t outlen);

#endif
