/*
 * stats: what the client can tell about itself, for metrics.
 */
#include "gcs/client_internal.h"

#include "auth/auth.h"

unsigned long gcs_client_token_refreshes(const struct gcs_client *c)
{
	return c && c->auth ? auth_refresh_count(c->auth) : 0;
}
