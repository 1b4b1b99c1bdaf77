/*
 * auth: the public face (auth.h). Ties discovery (discover.c), the source's
 * fetch function (refresh.c) and the token cache (token.c) together.
 */
#include "auth/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/source.h"
#include "auth/token.h"
#include "common/buf.h"
#include "common/log.h"

struct auth {
	struct auth_src src;
	struct token_cache cache;
};

struct auth *auth_new(const struct auth_config *cfg, char *err, size_t errlen)
{
	static const struct auth_config none = {0};
	struct auth *a = xcalloc(1, sizeof(*a));
	if (!cfg)
		cfg = &none;
	if (errlen)
		err[0] = '\0';
	int rc = auth_discover(cfg, &a->src, err, errlen);
	if (rc) {
		if (errlen && !err[0])
			snprintf(err, errlen, "credentials: %s", strerror(-rc));
		auth_src_free(&a->src);
		free(a);
		return NULL;
	}
	token_cache_init(&a->cache, auth_src_fetch, &a->src);
	log_info("auth: using %s", a->src.desc);
	return a;
}

const char *auth_source(const struct auth *a)
{
	return a ? a->src.desc : "none";
}

int auth_header(struct auth *a, char *out, size_t outlen, char *err, size_t errlen)
{
	if (!a || a->src.kind == AUTH_ANONYMOUS) {
		if (outlen)
			out[0] = '\0';
		return 0;
	}
	if (outlen)
		out[0] = '\0';
	return token_cache_get(&a->cache, out, outlen, err, errlen);
}

void auth_invalidate(struct auth *a, const char *rejected)
{
	if (!a || a->src.kind == AUTH_ANONYMOUS || !rejected || !rejected[0])
		return;
	token_cache_invalidate(&a->cache, rejected);
}

void auth_refusal_note(struct auth *a, char *out, size_t outlen)
{
	if (outlen)
		out[0] = '\0';
	if (a && a->src.kind != AUTH_ANONYMOUS)
		token_cache_note(&a->cache, out, outlen);
}

unsigned long auth_refresh_count(const struct auth *a)
{
	return a ? __atomic_load_n(&a->src.fetches, __ATOMIC_RELAXED) : 0;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	token_cache_destroy(&a->cache);
	auth_src_free(&a->src);
	free(a);
}
