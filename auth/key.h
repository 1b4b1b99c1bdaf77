/*
 * key: a credentials JSON document (service-account key or gcloud's
 * authorized_user file) parsed and checked, with the RSA private key
 * already loaded by OpenSSL.
 */
#ifndef GCSMOUNT_AUTH_KEY_H
#define GCSMOUNT_AUTH_KEY_H

#include <stddef.h>

#include <openssl/evp.h>

#include "auth/secret.h"

#define KEY_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"

enum key_type { KEY_SERVICE_ACCOUNT, KEY_AUTHORIZED_USER };

struct key {
	enum key_type type;
	char *token_uri;        /* always set after key_parse */
	/* service_account */
	char *client_email;
	char *private_key_id;   /* NULL when absent: the JWT then has no kid */
	EVP_PKEY *pkey;         /* RSA */
	/* authorized_user */
	char *client_id;
	struct secret client_secret;
	struct secret refresh_token;
};

/*
 * Parse and check a credentials document. origin names it in the error
 * line ("GC_KEYFILE_DICT", "key_file=/x.json"). A private_key whose
 * newlines arrive escaped (a literal backslash-n) is accepted. Returns 0, or
 * -EINVAL / -ENOTSUP (external_account) with one line in err; k is then
 * left empty. The caller wipes json.
 */
int key_parse(const char *json, size_t len, const char *origin, struct key *k,
	      char *err, size_t errlen);

/* Read path and key_parse it; id receives the file's identity. */
struct file_ident;
int key_load_file(const char *path, const char *origin, struct key *k,
		  struct file_ident *id, char *err, size_t errlen);

/* A description without secrets: "service account x@y" / "authorized user". */
void key_describe(const struct key *k, char *out, size_t outlen);

void key_free(struct key *k);

#endif
