/*
 * metadata: find the metadata server and fetch tokens from it.
 *
 * Probing: with GCE_METADATA_HOST/ROOT set, that host is used; it is probed
 * (any HTTP answer will do: emulators need not serve the whole tree) unless
 * probing is disabled and the host is not loopback, in which case it is
 * trusted as Go's client does. Without it, metadata.google.internal and
 * 169.254.169.254 are probed concurrently, each for ~METADATA_PROBE_MS, and
 * must answer 200 to GET /computeMetadata/v1/ with Metadata-Flavor: Google
 * (which other clouds' link-local services do not).
 */
#include "auth/metadata.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/exchange.h"
#include "common/http.h"

#define FLAVOR "Metadata-Flavor: Google"

int auth_metadata_is_loopback(const char *host)
{
	if (strncmp(host, "127.", 4) == 0 || strncmp(host, "[::1]", 5) == 0 ||
	    strcmp(host, "::1") == 0)
		return 1;
	size_t n = strcspn(host, ":");
	return n == 9 && strncasecmp(host, "localhost", 9) == 0;
}

/* "http://h:p/x" or "h:p/" -> "h:p". */
static void host_from_env(const char *v, char *host, size_t hostlen)
{
	if (strncasecmp(v, "http://", 7) == 0)
		v += 7;
	size_t n = strcspn(v, "/");
	snprintf(host, hostlen, "%.*s", (int)n, v);
}

static void probe_setup(struct http_req *req, struct http_resp *resp, char *url, size_t urllen,
			const char *host, const char *path)
{
	snprintf(url, urllen, "http://%s%s", host, path);
	http_req_init(req, "GET", url);
	http_resp_init(resp);
	http_req_header(req, FLAVOR);
	req->connect_timeout_ms = METADATA_PROBE_MS;
	req->low_speed_secs = 1;
}

/* The host named by the environment: reachable (any HTTP answer)? */
static int probe_env_host(const char *var, const char *host, char *err, size_t errlen)
{
	struct http_req req;
	struct http_resp resp;
	char url[512];
	probe_setup(&req, &resp, url, sizeof(url), host, "/");
	int rc = http_perform(&req, &resp);
	if (rc < 0)
		snprintf(err, errlen, "%s=%s: no metadata server answers there (%s)", var, host,
			 resp.err[0] ? resp.err : strerror(-rc));
	http_req_free(&req);
	http_resp_free(&resp);
	return rc < 0 ? -EHOSTUNREACH : 0;
}

int auth_metadata_find(char *host, size_t hostlen, char *note, size_t notelen,
		       char *err, size_t errlen)
{
	const char *var = "GCE_METADATA_HOST";
	const char *v = getenv(var);
	if (!v || !*v) {
		var = "GCE_METADATA_ROOT";
		v = getenv(var);
	}
	const char *noprobe = getenv("GCSMOUNT_NO_METADATA_PROBE");
	int probe = !(noprobe && *noprobe);
	if (v && *v) {
		host_from_env(v, host, hostlen);
		if (!host[0]) {
			snprintf(err, errlen, "%s=%s: no host name in it", var, v);
			return -EINVAL;
		}
		if (probe || auth_metadata_is_loopback(host)) {
			int rc = probe_env_host(var, host, err, errlen);
			if (rc)
				return rc;
		}
		snprintf(note, notelen, "metadata server at %s (from %s)", host, var);
		return 1;
	}
	if (!probe) {
		snprintf(note, notelen, "metadata server (probe skipped: GCSMOUNT_NO_METADATA_PROBE is set)");
		return 0;
	}
	static const char *const hosts[2] = {METADATA_HOST_NAME, METADATA_HOST_IP};
	struct http_req reqs[2];
	struct http_resp resps[2];
	struct http_req *rq[2] = {&reqs[0], &reqs[1]};
	struct http_resp *rs[2] = {&resps[0], &resps[1]};
	char urls[2][128];
	int rcs[2];
	for (int i = 0; i < 2; i++)
		probe_setup(&reqs[i], &resps[i], urls[i], sizeof(urls[i]), hosts[i],
			    "/computeMetadata/v1/");
	http_perform_many(rq, rs, rcs, 2);
	int found = -1;
	for (int i = 0; i < 2; i++) {
		if (found < 0 && rcs[i] == 0 && resps[i].status == 200)
			found = i;
		http_req_free(&reqs[i]);
		http_resp_free(&resps[i]);
	}
	if (found < 0) {
		snprintf(note, notelen, "metadata server (no answer from %s or %s)", hosts[0], hosts[1]);
		return 0;
	}
	snprintf(host, hostlen, "%s", hosts[found]);
	snprintf(note, notelen, "metadata server at %s", host);
	return 1;
}

int auth_metadata_token(const char *host, const char *scope, struct buf *token,
			long *expires_in, char *err, size_t errlen)
{
	struct buf url = BUF_INIT;
	buf_printf(&url, "http://%s/computeMetadata/v1/instance/service-accounts/default/token", host);
	if (scope) {
		buf_puts(&url, "?scopes=");
		http_urlencode(&url, scope, strlen(scope));
	}
	struct token_request r = {
		.method = "GET",
		.url = url.data,
		.header = FLAVOR,
		.connect_timeout_ms = 2000,
	};
	int rc = token_request_perform(&r, token, expires_in, err, errlen);
	buf_free(&url);
	return rc;
}
