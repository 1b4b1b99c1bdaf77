/* Helpers the auth unit tests share: key JSON, files in a temp directory, a clean environment. */
#ifndef GCSMOUNT_TESTS_AUTH_TEST_UTIL_H
#define GCSMOUNT_TESTS_AUTH_TEST_UTIL_H

/* Each tests/unit/test_*.c is a binary of its own, so everything here is
 * static; inline, so that a file which uses only some of it still builds
 * under -Werror. No network: env_reset sets GCSMOUNT_NO_METADATA_PROBE. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth/auth.h"
#include "common/http.h"
#include "common/log.h"

/* ------------------------------------------------------------------ */
/* fixtures: key JSON, temp files, environment                        */

static char tmpdir[] = "/tmp/gcsmount-test-auth-XXXXXX";

static inline EVP_PKEY *gen_key(int type, int bits)
{
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(type, NULL);
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	if (type == EVP_PKEY_RSA)
		assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits), 1);
	else
		assert_int_equal(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static inline char *to_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
	char *p = NULL;
	long n = BIO_get_mem_data(b, &p);
	char *s = strndup(p, (size_t)n);
	BIO_free(b);
	return s;
}

/* A service-account JSON document (caller frees). NULL fields are left out. */
static inline char *sa_json(const char *type, const char *email, const char *pem,
			    const char *token_uri)
{
	cJSON *o = cJSON_CreateObject();
	if (type)
		cJSON_AddStringToObject(o, "type", type);
	cJSON_AddStringToObject(o, "project_id", "proj");
	cJSON_AddStringToObject(o, "private_key_id", "kid-123");
	if (pem)
		cJSON_AddStringToObject(o, "private_key", pem);
	if (email)
		cJSON_AddStringToObject(o, "client_email", email);
	if (token_uri)
		cJSON_AddStringToObject(o, "token_uri", token_uri);
	char *s = cJSON_Print(o);
	cJSON_Delete(o);
	return s;
}

static inline char *au_json(const char *refresh, const char *token_uri)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "authorized_user");
	cJSON_AddStringToObject(o, "client_id", "cid.apps.googleusercontent.com");
	cJSON_AddStringToObject(o, "client_secret", "s3cr3t&=x");
	if (refresh)
		cJSON_AddStringToObject(o, "refresh_token", refresh);
	if (token_uri)
		cJSON_AddStringToObject(o, "token_uri", token_uri);
	char *s = cJSON_Print(o);
	cJSON_Delete(o);
	return s;
}

static inline void write_file(const char *path, const char *text)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(rename(tmp, path), 0); /* new inode, like a real rotation */
}

static inline char *tpath(const char *name)
{
	static char bufs[8][512];
	static int i;
	char *p = bufs[i++ % 8];
	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

static const char *const cred_vars[] = {
	"GC_KEY_PATH", "GOOGLE_KEY_PATH", "GOOGLE_APPLICATION_CREDENTIALS", "GC_KEYFILE_DICT",
	"GOOGLE_KEYFILE_DICT", "GCE_METADATA_HOST", "GCE_METADATA_ROOT", "CLOUDSDK_CONFIG",
};

/* Reset the environment: nothing configured, no probe, no default key. */
static inline int env_reset(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cred_vars) / sizeof(cred_vars[0]); i++)
		unsetenv(cred_vars[i]);
	setenv("GCSMOUNT_NO_METADATA_PROBE", "1", 1);
	setenv("GCSMOUNT_DEFAULT_KEY_PATH", tpath("no-default-key.json"), 1);
	setenv("HOME", tpath("home"), 1);
	return 0;
}

static inline struct auth *new_auth(const struct auth_config *cfg, char *err, size_t errlen)
{
	err[0] = '\0';
	return auth_new(cfg, err, errlen);
}

static inline void assert_no_secret(const char *err)
{
	assert_null(strstr(err, "BEGIN"));
	assert_null(strstr(err, "MII"));
	assert_null(strstr(err, "s3cr3t"));
}

/* ------------------------------------------------------------------ */
/* around the groups                                                  */

static inline void rm_tree(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* Before the first group: errors only in the log, a fresh temp directory,
 * curl ready, no credentials configured. 0, or -1 if any of it fails. */
static inline int auth_test_begin(void)
{
	log_set_level(LOG_LVL_ERROR);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return -1;
	}
	if (http_global_init() != 0)
		return -1;
	return env_reset(NULL);
}

static inline void auth_test_end(void)
{
	http_global_cleanup();
	rm_tree(tmpdir);
}

#endif
