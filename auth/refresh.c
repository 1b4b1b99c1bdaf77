/*
 * refresh: obtain a new access token from the chosen source. The token
 * cache calls auth_src_fetch from one thread at a time, so the source's
 * state (the key, the file identities) needs no lock of its own.
 *
 *   service account   RS256 JWT POSTed to token_uri (jwt-bearer grant)
 *   authorized user   refresh_token grant POSTed to token_uri
 *   token file        the file's content, re-read when its identity changes
 *   metadata server   GET .../service-accounts/default/token
 *
 * Key rotation: before each key-based refresh the key file is stat()ed
 * (following symlinks, as Kubernetes swaps a ..data symlink); when
 * (dev, ino, mtime, size) changed it is re-read and re-parsed, and a broken
 * replacement keeps the old key with one error line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/exchange.h"
#include "auth/jwt.h"
#include "auth/metadata.h"
#include "auth/source.h"
#include "common/http.h"
#include "common/log.h"

#define JWT_GRANT "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"

void auth_src_rotate_key(struct auth_src *s)
{
	if (!s->path)
		return;
	struct file_ident now;
	int rc = auth_file_ident(s->path, &now);
	if (rc < 0) {
		if (s->seen.valid)
			log_error("auth: %s: cannot stat the key file (%s); keeping the loaded key",
				  s->origin, strerror(-rc));
		s->seen.valid = 0;
		return;
	}
	if (auth_file_ident_equal(&now, &s->ident) || auth_file_ident_equal(&now, &s->seen)) {
		s->seen = now;
		return;
	}
	s->seen = now;
	struct key nk;
	struct file_ident nid;
	char err[512];
	rc = key_load_file(s->path, s->origin, &nk, &nid, err, sizeof(err));
	if (rc) {
		log_error("auth: the key file changed but the new one is unusable, keeping the "
			  "previous key: %s", err);
		return;
	}
	key_free(&s->key);
	s->key = nk;
	s->ident = s->seen = nid;
	char d[256];
	key_describe(&s->key, d, sizeof(d));
	log_info("auth: reloaded the rotated key %s (%s)", s->origin, d);
}

static int fetch_service_account(struct auth_src *s, struct buf *token, long *life,
				 char *err, size_t errlen)
{
	struct jwt_claims c = {
		.kid = s->key.private_key_id,
		.iss = s->key.client_email,
		.scope = s->scope ? s->scope : AUTH_DEFAULT_SCOPE,
		.aud = s->key.token_uri,
		.iat = time(NULL),
	};
	struct buf jwt = BUF_INIT, form = BUF_INIT;
	int rc = jwt_build(&jwt, s->key.pkey, &c, err, errlen);
	if (rc)
		return rc;
	buf_grow(&form, jwt.len + 128);
	buf_puts(&form, "grant_type=" JWT_GRANT "&assertion=");
	http_urlencode(&form, jwt.data, jwt.len);
	buf_free_secret(&jwt);
	struct token_request r = {.method = "POST", .url = s->key.token_uri, .form = form.data};
	rc = token_request_perform(&r, token, life, err, errlen);
	buf_free_secret(&form);
	return rc;
}

static int fetch_authorized_user(struct auth_src *s, struct buf *token, long *life,
				 char *err, size_t errlen)
{
	struct buf form = BUF_INIT;
	/* Sized for the worst case (every byte %-encoded): no realloc leaves a
	 * copy of the secrets behind. */
	buf_grow(&form, 128 + 3 * (strlen(s->key.client_id) + s->key.client_secret.len +
				   s->key.refresh_token.len));
	buf_puts(&form, "grant_type=refresh_token&client_id=");
	http_urlencode(&form, s->key.client_id, strlen(s->key.client_id));
	buf_puts(&form, "&client_secret=");
	http_urlencode(&form, s->key.client_secret.data, s->key.client_secret.len);
	buf_puts(&form, "&refresh_token=");
	http_urlencode(&form, s->key.refresh_token.data, s->key.refresh_token.len);
	struct token_request r = {.method = "POST", .url = s->key.token_uri, .form = form.data};
	int rc = token_request_perform(&r, token, life, err, errlen);
	buf_free_secret(&form);
	return rc;
}

static int fetch_token_file(struct auth_src *s, struct buf *token, long *life,
			    char *err, size_t errlen)
{
	struct file_ident now;
	int rc = auth_file_ident(s->path, &now);
	int changed = rc == 0 && !auth_file_ident_equal(&now, &s->ident) &&
		      !auth_file_ident_equal(&now, &s->seen);
	if (rc < 0 && s->seen.valid) {
		log_warn("auth: %s: %s; keeping the token read before", s->origin, strerror(-rc));
		s->seen.valid = 0;
	} else if (rc == 0 && !changed) {
		s->seen = now;
	}
	if (changed) {
		struct secret t = SECRET_INIT;
		struct file_ident id;
		char e[512];
		s->seen = now;
		if (auth_token_file_load(s->path, s->origin, &t, &id, e, sizeof(e)) == 0) {
			auth_secret_clear(&s->file_token);
			s->file_token = t;
			s->ident = s->seen = id;
			s->file_token_used = 0;
			log_info("auth: %s changed, using the new token", s->origin);
		} else {
			auth_secret_clear(&t);
			log_error("auth: the token file changed but is unusable, keeping the previous "
				  "token: %s", e);
		}
	}
	if (!s->file_token.data) {
		snprintf(err, errlen, "%s: no token", s->origin);
		return -EACCES;
	}
	if (!s->file_token_used)
		__atomic_fetch_add(&s->fetches, 1, __ATOMIC_RELAXED);
	s->file_token_used = 1;
	buf_reset(token);
	buf_append(token, s->file_token.data, s->file_token.len);
	*life = TOKEN_FILE_RECHECK_S;
	return 0;
}

int auth_src_fetch(void *ctx, struct buf *token, long *lifetime_s, char *err, size_t errlen)
{
	struct auth_src *s = ctx;
	int rc;
	switch (s->kind) {
	case AUTH_KEY:
		auth_src_rotate_key(s);
		rc = s->key.type == KEY_SERVICE_ACCOUNT
			     ? fetch_service_account(s, token, lifetime_s, err, errlen)
			     : fetch_authorized_user(s, token, lifetime_s, err, errlen);
		break;
	case AUTH_METADATA:
		rc = auth_metadata_token(s->md_host, s->scope, token, lifetime_s, err, errlen);
		break;
	case AUTH_TOKEN_FILE:
		return fetch_token_file(s, token, lifetime_s, err, errlen);
	default:
		snprintf(err, errlen, "anonymous access has no token");
		return -EINVAL;
	}
	if (rc == 0) {
		__atomic_fetch_add(&s->fetches, 1, __ATOMIC_RELAXED);
		log_debug("auth: new token from %s, valid for %lds", s->desc, *lifetime_s);
	}
	return rc;
}

void auth_src_free(struct auth_src *s)
{
	key_free(&s->key);
	auth_secret_clear(&s->file_token);
	free(s->origin);
	free(s->path);
	free(s->scope);
	memset(s, 0, sizeof(*s));
}
