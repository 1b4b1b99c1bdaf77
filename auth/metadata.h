/*
 * metadata: the GCE/GKE metadata server (Workload Identity on GKE), found
 * the way Google's client libraries find it: GCE_METADATA_HOST (or the
 * older GCE_METADATA_ROOT) names it, else metadata.google.internal and
 * 169.254.169.254 are probed with a short timeout. GCSMOUNT_NO_METADATA_PROBE
 * (any value) skips every probe of a non-loopback address.
 */
#ifndef GCSMOUNT_AUTH_METADATA_H
#define GCSMOUNT_AUTH_METADATA_H

#include <stddef.h>

#include "common/buf.h"

#define METADATA_HOST_NAME "metadata.google.internal"
#define METADATA_HOST_IP "169.254.169.254"
#define METADATA_PROBE_MS 1000

/*
 * Look for a metadata server. Returns 1 with its "host[:port]" in host and
 * a description in note; 0 when there is none, with what was tried in note;
 * or a negative errno with one line in err when GCE_METADATA_HOST is set
 * but nothing answers there.
 */
int auth_metadata_find(char *host, size_t hostlen, char *note, size_t notelen,
		       char *err, size_t errlen);

/* 1 when host (without port) is a loopback name or address. */
int auth_metadata_is_loopback(const char *host);

/* GET a token for the default service account (scope NULL: the
 * instance's own scopes). Same return values as token_request_perform. */
int auth_metadata_token(const char *host, const char *scope, struct buf *token,
			long *expires_in, char *err, size_t errlen);

#endif
