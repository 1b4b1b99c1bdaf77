/*
 * token: cache of the Authorization header line and single-flight refresh.
 *
 * States, by the cache's monotonic clock `now`:
 *   now < refresh_at              fresh: use it
 *   refresh_at <= now < expires_at due: one caller refreshes, the others
 *                                 keep using the valid token meanwhile
 *   expires_at <= now             expired: callers wait for the refresh
 * A refresh that fails while the token is still valid keeps the token and
 * is not tried again for TOKEN_RETRY_AFTER_MS; one that fails with the
 * token expired returns its error to every caller that waited for it (and
 * to callers arriving within TOKEN_FAIL_HOLD_MS), so a dead endpoint is
 * not hammered by every FUSE thread.
 *
 * A token the server refused (401, token_cache_invalidate) is replaced at
 * once, but at most once per TOKEN_FAIL_HOLD_MS: when its replacement is
 * refused as well, callers get -EACCES until then, so an endpoint that
 * hands out tokens the server will not take costs one fetch a second, not
 * one per request. A token whose answer said it had already expired
 * (expires_in <= 0: the clock of the token server or of a proxy is off) is
 * used anyway, since the server may well take it, for TOKEN_EXPIRED_USE_S
 * at most; the note naming that answer goes into the error line when the
 * server refuses it.
 */
#include "auth/token.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define BEARER "Authorization: Bearer "

int64_t token_margin_ms(int64_t lifetime_ms)
{
	if (lifetime_ms <= 0)
		return 0;
	int64_t quarter = lifetime_ms / 4;
	return quarter < TOKEN_MARGIN_MAX_MS ? quarter : TOKEN_MARGIN_MAX_MS;
}

int64_t token_monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void token_cache_init(struct token_cache *c, token_fetch_fn fetch, void *ctx)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->fetch = fetch;
	c->ctx = ctx;
	c->now_ms = token_monotonic_ms;
	c->refresh_at = c->expires_at = INT64_MIN;
	c->replaced_refused_at = INT64_MIN;
}

void token_cache_destroy(struct token_cache *c)
{
	auth_secret_clear(&c->header);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
}

/* Copy the header line out and unlock. */
static int copy_out_unlock(struct token_cache *c, char *out, size_t outlen,
			   char *err, size_t errlen)
{
	int rc = 0;
	if (c->header.len + 1 > outlen) {
		snprintf(err, errlen, "auth header (%zu bytes) does not fit the buffer (%zu)",
			 c->header.len, outlen);
		rc = -ERANGE;
	} else {
		memcpy(out, c->header.data, c->header.len + 1);
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

static int fail_unlock(struct token_cache *c, int rc, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", c->last_err);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* The token that replaced a refused one was refused as well, too soon to
 * fetch another. */
static int refused_unlock(struct token_cache *c, int64_t now, char *err, size_t errlen)
{
	long long wait = (long long)(c->replaced_refused_at + TOKEN_FAIL_HOLD_MS - now);
	snprintf(err, errlen, "the server refused (HTTP 401) the token fetched in the last second%s%s; "
		 "the next is fetched in %lld ms", c->expired_note[0] ? ": " : "", c->expired_note,
		 wait);
	pthread_mutex_unlock(&c->mu);
	return -EACCES;
}

/* Under mu: install a fetched token. */
static int install(struct token_cache *c, const struct buf *tok, long life_s, int64_t start)
{
	struct buf line = BUF_INIT;
	buf_grow(&line, sizeof(BEARER) + tok->len);
	buf_puts(&line, BEARER);
	buf_append(&line, tok->data, tok->len);
	int rc = auth_secret_set(&c->header, line.data, line.len);
	buf_free_secret(&line);
	if (rc)
		return rc;
	int64_t life_ms = (int64_t)life_s * 1000;
	c->expires_at = start + life_ms;
	c->refresh_at = c->expires_at - token_margin_ms(life_ms);
	c->retry_at = INT64_MIN;
	c->refused = 0;
	c->fetches_ok++;
	return 0;
}

/* Under mu, after install(): remember (and log once) an answer that said
 * the token had already expired. */
static void note_expired(struct token_cache *c, long life_s, const char *note)
{
	int was = c->expired_note[0] != '\0';
	if (life_s > 0) {
		c->expired_note[0] = '\0';
		if (was)
			log_info("auth: token answers carry a lifetime again");
		return;
	}
	snprintf(c->expired_note, sizeof(c->expired_note), "%s",
		 note[0] ? note : "the credentials source answered a token that had already expired");
	if (!was)
		log_warn("auth: %s; using such tokens for %ds at most", c->expired_note,
			 TOKEN_EXPIRED_USE_S);
	else
		log_debug("auth: %s", c->expired_note);
}

int token_cache_get(struct token_cache *c, char *out, size_t outlen, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->mu);
	for (;;) {
		int64_t now = c->now_ms();
		int valid = c->header.data && now < c->expires_at;
		if (valid && (now < c->refresh_at || c->refreshing || now < c->retry_at))
			return copy_out_unlock(c, out, outlen, err, errlen);
		if (c->refreshing) {
			unsigned long seen = c->attempts;
			while (c->refreshing)
				pthread_cond_wait(&c->cv, &c->mu);
			now = c->now_ms();
			valid = c->header.data && now < c->expires_at;
			if (c->attempts != seen && c->last_rc != 0 && !valid)
				return fail_unlock(c, c->last_rc, err, errlen);
			continue;
		}
		if (!valid && c->last_rc != 0 && now - c->last_fail_at < TOKEN_FAIL_HOLD_MS)
			return fail_unlock(c, c->last_rc, err, errlen);
		if (!valid && c->refused && c->replaced_refused_at > now - TOKEN_FAIL_HOLD_MS)
			return refused_unlock(c, now, err, errlen);
		if (!valid && c->refused)
			c->replaced_refused_at = now;
		break;
	}
	c->refreshing = 1;
	pthread_mutex_unlock(&c->mu);

	struct buf tok = BUF_INIT;
	long life = 0;
	char ferr[512] = "";
	int64_t start = c->now_ms();
	int rc = c->fetch(c->ctx, &tok, &life, ferr, sizeof(ferr));
	if (rc == 0 && (!tok.data || tok.len == 0)) {
		snprintf(ferr, sizeof(ferr), "credentials source returned an empty token");
		rc = -EIO;
	}

	pthread_mutex_lock(&c->mu);
	int64_t now = c->now_ms();
	if (rc == 0) {
		rc = install(c, &tok, life > 0 ? life : TOKEN_EXPIRED_USE_S, start);
		if (rc)
			snprintf(ferr, sizeof(ferr), "out of memory storing the token");
		else
			note_expired(c, life, ferr);
	}
	buf_free_secret(&tok);
	c->attempts++;
	c->last_rc = rc;
	if (rc) {
		snprintf(c->last_err, sizeof(c->last_err), "%s", ferr[0] ? ferr : "token refresh failed");
		c->last_fail_at = now;
		c->retry_at = now + TOKEN_RETRY_AFTER_MS;
	}
	c->refreshing = 0;
	pthread_cond_broadcast(&c->cv);
	if (rc == 0)
		return copy_out_unlock(c, out, outlen, err, errlen);
	if (c->header.data && now < c->expires_at) {
		log_warn("auth: token refresh failed, keeping the current token for %llds more: %s",
			 (long long)((c->expires_at - now) / 1000), c->last_err);
		return copy_out_unlock(c, out, outlen, err, errlen);
	}
	return fail_unlock(c, rc, err, errlen);
}

void token_cache_invalidate(struct token_cache *c, const char *rejected)
{
	if (!rejected)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->header.data && strcmp(c->header.data, rejected) == 0) {
		c->refresh_at = c->expires_at = INT64_MIN;
		c->retry_at = INT64_MIN;
		c->refused = 1;
	}
	pthread_mutex_unlock(&c->mu);
}

void token_cache_note(struct token_cache *c, char *out, size_t outlen)
{
	pthread_mutex_lock(&c->mu);
	snprintf(out, outlen, "%s", c->expired_note);
	pthread_mutex_unlock(&c->mu);
}
