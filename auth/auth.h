/*
 * auth: hands gcs/ a valid Authorization header; nothing else knows a
 * token's life.
 *
 * auth_new() discovers credentials in the documented order (see README and
 * docs/auth order): -o key_file / token_file, GC_KEY_PATH, GOOGLE_KEY_PATH,
 * GOOGLE_APPLICATION_CREDENTIALS, GC_KEYFILE_DICT, GOOGLE_KEYFILE_DICT, the
 * default secret mount /plx-context/.gc/gc-secret.json, gcloud's
 * application-default credentials, the metadata server; or anonymous.
 * A source that is named but broken is an error, never a silent fall-through.
 *
 * Thread safety: every function but auth_new/auth_free may be called from
 * any thread at once. Tokens are refreshed ahead of expiry by one caller at a
 * time while the others keep using the still-valid token.
 *
 * Environment read by auth_new (besides the credential variables above):
 *   GCE_METADATA_HOST / GCE_METADATA_ROOT  metadata server host[:port]
 *   CLOUDSDK_CONFIG, HOME                  where gcloud's ADC file lives
 *   GCSMOUNT_NO_METADATA_PROBE=1           never probe metadata.google.internal /
 *                                          169.254.169.254 (tests, CI, no network)
 *   GCSMOUNT_DEFAULT_KEY_PATH=PATH         test hook: replaces the default secret
 *                                          mount path /plx-context/.gc/gc-secret.json
 */
#ifndef GCSMOUNT_AUTH_H
#define GCSMOUNT_AUTH_H

#include <stddef.h>

struct auth_config {
	const char *key_file;    /* -o key_file=PATH, or NULL */
	const char *token_file;  /* -o token_file=PATH, or NULL */
	int anonymous;           /* -o anonymous */
	const char *scope;       /* NULL: devstorage.read_write */
};

struct auth;

/* A size for auth_new's err that holds its longest line (the "nothing
 * found" line names every place tried) unless paths are unusually long;
 * a smaller buffer just truncates the line. */
#define AUTH_ERR_LEN 512

/*
 * Find and load credentials. Does not contact a token endpoint (the first
 * auth_header() does). On failure returns NULL and writes one line naming
 * the cause into err.
 */
struct auth *auth_new(const struct auth_config *cfg, char *err, size_t errlen);

/* A description of the source chosen, for the log: never a secret. */
const char *auth_source(const struct auth *a);

/*
 * Write the header line "Authorization: Bearer TOKEN" into out (or "" for
 * anonymous). Returns 0, or a negative errno with one line in err:
 * -EACCES (credentials refused, or the server refused the token fetched in
 * the last second too), -EIO (token endpoint unreachable or broken).
 */
int auth_header(struct auth *a, char *out, size_t outlen, char *err, size_t errlen);

/*
 * The server answered 401 to a request sent with `rejected` (the header line
 * auth_header gave). Forces the next auth_header() to fetch a new token,
 * unless another thread already replaced that token.
 */
void auth_invalidate(struct auth *a, const char *rejected);

/*
 * What is known against the current token, for the error line of a request
 * the server refused with 401: one phrase naming the token answer that said
 * the token had already expired, or "" when nothing is known.
 */
void auth_refusal_note(struct auth *a, char *out, size_t outlen);

/* Number of tokens fetched so far (for metrics and tests). */
unsigned long auth_refresh_count(const struct auth *a);

void auth_free(struct auth *a);

#endif
