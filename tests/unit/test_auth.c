/*
 * test_auth: the auth/ module.
 *
 *  - key JSON parsing and its one-line errors (good key, escaped newlines,
 *    missing fields, not JSON, bad PEM, EC key, wrong types, files)
 *  - discovery order with environment variables and temp files
 *  - refresh-margin arithmetic; the token cache with a fake clock and a fake
 *    fetch (single flight, stale-while-refresh, failures, invalidate)
 *  - end to end against a tiny HTTP server on 127.0.0.1 run by this test:
 *    JWT exchange, 16 threads at expiry -> one request, 401 invalidate,
 *    error mapping and retries, key rotation, authorized_user, metadata.
 * No network: GCSMOUNT_NO_METADATA_PROBE is set throughout.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth/auth.h"
#include "auth/exchange.h"
#include "auth/jwt.h"
#include "auth/key.h"
#include "auth/source.h"
#include "auth/token.h"
#include "common/buf.h"
#include "common/http.h"
#include "common/log.h"

/* ------------------------------------------------------------------ */
/* fixtures: keys, temp files, environment                            */

static EVP_PKEY *key_a, *key_b;
static char *pem_a, *pem_b, *pem_ec;
static char tmpdir[] = "/tmp/gcsmount-test-auth-XXXXXX";

static EVP_PKEY *gen_key(int type, int bits)
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

static char *to_pem(EVP_PKEY *k)
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
static char *sa_json(const char *type, const char *email, const char *pem, const char *token_uri)
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

static char *au_json(const char *refresh, const char *token_uri)
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

static void write_file(const char *path, const char *text)
{
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(rename(tmp, path), 0); /* new inode, like a real rotation */
}

static char *tpath(const char *name)
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
static int env_reset(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cred_vars) / sizeof(cred_vars[0]); i++)
		unsetenv(cred_vars[i]);
	setenv("GCSMOUNT_NO_METADATA_PROBE", "1", 1);
	setenv("GCSMOUNT_DEFAULT_KEY_PATH", tpath("no-default-key.json"), 1);
	setenv("HOME", tpath("home"), 1);
	return 0;
}

static struct auth *new_auth(const struct auth_config *cfg, char *err, size_t errlen)
{
	err[0] = '\0';
	return auth_new(cfg, err, errlen);
}

/* ------------------------------------------------------------------ */
/* key parsing                                                        */

static int parse(const char *json, struct key *k, char *err, size_t errlen)
{
	err[0] = '\0';
	return key_parse(json, strlen(json), "TESTSRC", k, err, errlen);
}

static void assert_no_secret(const char *err)
{
	assert_null(strstr(err, "BEGIN"));
	assert_null(strstr(err, "MII"));
	assert_null(strstr(err, "s3cr3t"));
}

static void test_key_good(void **state)
{
	(void)state;
	char *j = sa_json("service_account", "a@p.iam.gserviceaccount.com", pem_a, NULL);
	struct key k;
	char err[512];
	assert_int_equal(parse(j, &k, err, sizeof(err)), 0);
	assert_int_equal(k.type, KEY_SERVICE_ACCOUNT);
	assert_string_equal(k.client_email, "a@p.iam.gserviceaccount.com");
	assert_string_equal(k.private_key_id, "kid-123");
	assert_string_equal(k.token_uri, "https://oauth2.googleapis.com/token");
	assert_non_null(k.pkey);
	assert_int_equal(EVP_PKEY_eq(k.pkey, key_a), 1);
	key_free(&k);
	free(j);

	/* token_uri is taken from the file; "type" may be absent */
	j = sa_json(NULL, "a@p", pem_a, "http://127.0.0.1:9/tok");
	assert_int_equal(parse(j, &k, err, sizeof(err)), 0);
	assert_string_equal(k.token_uri, "http://127.0.0.1:9/tok");
	key_free(&k);
	free(j);
}

/* A private_key whose newlines arrive as a literal backslash-n. */
static void test_key_escaped_newlines(void **state)
{
	(void)state;
	struct buf esc = BUF_INIT;
	for (const char *p = pem_a; *p; p++) {
		if (*p == '\n')
			buf_puts(&esc, "\\n");
		else
			buf_putc(&esc, *p);
	}
	assert_null(strchr(esc.data, '\n'));
	char *j = sa_json("service_account", "a@p", esc.data, NULL);
	assert_non_null(strstr(j, "\\\\n")); /* in the JSON text: backslash backslash n */
	struct key k;
	char err[512];
	assert_int_equal(parse(j, &k, err, sizeof(err)), 0);
	assert_int_equal(EVP_PKEY_eq(k.pkey, key_a), 1);
	key_free(&k);
	free(j);
	buf_free(&esc);
}

static void expect_parse_error(const char *json, int want_rc, const char *needle)
{
	struct key k;
	char err[512];
	int rc = parse(json, &k, err, sizeof(err));
	if (rc != want_rc || !strstr(err, needle) || strncmp(err, "TESTSRC: ", 9) != 0)
		fail_msg("rc %d (want %d), err \"%s\" (want \"%s\")", rc, want_rc, err, needle);
	assert_null(strchr(err, '\n'));
	assert_no_secret(err);
	assert_null(k.pkey);
	assert_null(k.client_email);
}

static void test_key_errors(void **state)
{
	(void)state;
	char *j;
	j = sa_json("service_account", "a@p", NULL, NULL);
	expect_parse_error(j, -EINVAL, "no \"private_key\"");
	free(j);
	j = sa_json("service_account", NULL, pem_a, NULL);
	expect_parse_error(j, -EINVAL, "no \"client_email\"");
	free(j);
	expect_parse_error("{\"type\": \"service_account\", \"private_key\": \"x", -EINVAL,
			   "not valid JSON");
	expect_parse_error("", -EINVAL, "empty");
	expect_parse_error("[1, 2]", -EINVAL, "not an object");
	j = sa_json("service_account", "a@p",
		    "-----BEGIN PRIVATE KEY-----\nMIIBroken\n-----END PRIVATE KEY-----\n", NULL);
	expect_parse_error(j, -EINVAL, "not a PEM private key");
	free(j);
	j = sa_json("service_account", "a@p", "just text", NULL);
	expect_parse_error(j, -EINVAL, "not a PEM private key");
	free(j);
	j = sa_json("service_account", "a@p", pem_ec, NULL);
	expect_parse_error(j, -EINVAL, "not RSA");
	free(j);
	j = sa_json("external_account", "a@p", pem_a, NULL);
	expect_parse_error(j, -ENOTSUP, "not supported");
	free(j);
	j = sa_json("impersonated_service_account", "a@p", pem_a, NULL);
	expect_parse_error(j, -EINVAL, "unsupported credentials type \"impersonated_service_account\"");
	free(j);
	j = sa_json("service_account", "a@p", pem_a, "ftp://x");
	expect_parse_error(j, -EINVAL, "token_uri");
	free(j);
	j = au_json(NULL, NULL);
	expect_parse_error(j, -EINVAL, "without \"refresh_token\"");
	free(j);
}

static void test_key_authorized_user(void **state)
{
	(void)state;
	char *j = au_json("1//refresh", NULL);
	struct key k;
	char err[512];
	assert_int_equal(parse(j, &k, err, sizeof(err)), 0);
	assert_int_equal(k.type, KEY_AUTHORIZED_USER);
	assert_string_equal(k.client_id, "cid.apps.googleusercontent.com");
	assert_string_equal(k.client_secret.data, "s3cr3t&=x");
	assert_string_equal(k.refresh_token.data, "1//refresh");
	assert_string_equal(k.token_uri, "https://oauth2.googleapis.com/token");
	char d[256];
	key_describe(&k, d, sizeof(d));
	assert_no_secret(d);
	assert_null(strstr(d, "1//refresh"));
	key_free(&k);
	free(j);
}

static void test_key_files(void **state)
{
	(void)state;
	struct key k;
	struct file_ident id;
	char err[512];
	assert_int_equal(key_load_file(tpath("absent.json"), "GC_KEY_PATH=x", &k, &id, err,
				       sizeof(err)), -ENOENT);
	assert_string_equal(err, "GC_KEY_PATH=x: no such file");
	assert_int_equal(key_load_file(tmpdir, "K", &k, &id, err, sizeof(err)), -EISDIR);
	assert_non_null(strstr(err, "is a directory"));
	if (geteuid() != 0) { /* root reads anything */
		write_file(tpath("noread.json"), "{}");
		chmod(tpath("noread.json"), 0);
		assert_int_equal(key_load_file(tpath("noread.json"), "K", &k, &id, err, sizeof(err)),
				 -EACCES);
		assert_non_null(strstr(err, "not readable"));
	}
	char *j = sa_json("service_account", "a@p", pem_a, NULL);
	write_file(tpath("good.json"), j);
	free(j);
	assert_int_equal(key_load_file(tpath("good.json"), "K", &k, &id, err, sizeof(err)), 0);
	assert_true(id.valid);
	struct file_ident id2;
	assert_int_equal(auth_file_ident(tpath("good.json"), &id2), 0);
	assert_true(auth_file_ident_equal(&id, &id2));
	key_free(&k);
}

/* ------------------------------------------------------------------ */
/* discovery                                                          */

static void expect_source(const char *needle)
{
	char err[1024];
	struct auth_config cfg = {0};
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	if (!a)
		fail_msg("auth_new failed: %s", err);
	if (!strstr(auth_source(a), needle))
		fail_msg("source \"%s\" does not name \"%s\"", auth_source(a), needle);
	assert_no_secret(auth_source(a));
	auth_free(a);
}

static void expect_new_error(const struct auth_config *cfg, const char *needle)
{
	char err[1024];
	struct auth_config none = {0};
	struct auth *a = new_auth(cfg ? cfg : &none, err, sizeof(err));
	if (a || !strstr(err, needle))
		fail_msg("auth_new: %s, err \"%s\" (want \"%s\")", a ? "succeeded" : "failed", err,
			 needle);
	assert_null(strchr(err, '\n'));
	assert_no_secret(err);
}

static void test_discover_nothing(void **state)
{
	(void)state;
	char err[1024];
	struct auth_config cfg = {0};
	assert_null(new_auth(&cfg, err, sizeof(err)));
	static const char *const names[] = {
		"no credentials found", "key_file", "token_file", "GC_KEY_PATH", "GOOGLE_KEY_PATH",
		"GOOGLE_APPLICATION_CREDENTIALS", "GC_KEYFILE_DICT", "GOOGLE_KEYFILE_DICT",
		"no-default-key.json", "application_default_credentials.json",
		"GCSMOUNT_NO_METADATA_PROBE", "anonymous",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strstr(err, names[i]))
			fail_msg("\"%s\" not in \"%s\"", names[i], err);
	assert_null(strchr(err, '\n'));
}

static void test_discover_anonymous(void **state)
{
	(void)state;
	/* Broken sources everywhere: anonymous does no discovery at all. */
	setenv("GC_KEY_PATH", tpath("absent.json"), 1);
	setenv("GC_KEYFILE_DICT", "{broken", 1);
	struct auth_config cfg = {.anonymous = 1, .key_file = tpath("absent.json")};
	char err[512], hdr[128] = "junk";
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(strstr(auth_source(a), "anonymous"));
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	assert_string_equal(hdr, "");
	auth_invalidate(a, "");
	assert_int_equal(auth_refresh_count(a), 0);
	auth_free(a);
}

/* Each source has its own client_email; peel them off in order. */
static void test_discover_order(void **state)
{
	(void)state;
	char *j;
	static const char *const files[] = {"opt", "gckey", "googlekey", "gac", "def", "adc"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char email[64], name[64];
		snprintf(email, sizeof(email), "%s@p.iam.gserviceaccount.com", files[i]);
		snprintf(name, sizeof(name), "%s.json", files[i]);
		j = sa_json("service_account", email, pem_a, NULL);
		write_file(tpath(name), j);
		free(j);
	}
	mkdir(tpath("gcloud"), 0700);
	rename(tpath("adc.json"), tpath("gcloud/application_default_credentials.json"));
	char *d1 = sa_json("service_account", "dict1@p", pem_a, NULL);
	char *d2 = sa_json("service_account", "dict2@p", pem_a, NULL);

	setenv("GC_KEY_PATH", tpath("gckey.json"), 1);
	setenv("GOOGLE_KEY_PATH", tpath("googlekey.json"), 1);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", tpath("gac.json"), 1);
	setenv("GC_KEYFILE_DICT", d1, 1);
	setenv("GOOGLE_KEYFILE_DICT", d2, 1);
	setenv("GCSMOUNT_DEFAULT_KEY_PATH", tpath("def.json"), 1);
	setenv("CLOUDSDK_CONFIG", tpath("gcloud"), 1);

	/* 1. the option beats every variable */
	char err[512];
	struct auth_config cfg = {.key_file = tpath("opt.json")};
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(strstr(auth_source(a), "opt@p"));
	assert_non_null(strstr(auth_source(a), "key_file="));
	auth_free(a);

	expect_source("gckey@p");
	assert_non_null(strstr(tpath("x"), tmpdir));
	unsetenv("GC_KEY_PATH");
	expect_source("googlekey@p");
	unsetenv("GOOGLE_KEY_PATH");
	expect_source("gac@p");
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	expect_source("dict1@p");
	unsetenv("GC_KEYFILE_DICT");
	expect_source("dict2@p");
	unsetenv("GOOGLE_KEYFILE_DICT");
	expect_source("def@p");
	setenv("GCSMOUNT_DEFAULT_KEY_PATH", tpath("no-default-key.json"), 1);
	expect_source("adc@p");
	expect_source("application-default");
	/* ~/.config/gcloud when CLOUDSDK_CONFIG is unset */
	unsetenv("CLOUDSDK_CONFIG");
	mkdir(tpath("home"), 0700);
	mkdir(tpath("home/.config"), 0700);
	rename(tpath("gcloud"), tpath("home/.config/gcloud"));
	expect_source("adc@p");
	rename(tpath("home/.config/gcloud"), tpath("gcloud"));
	free(d1);
	free(d2);
}

/* Set but broken is an error naming the variable, even with good
 * sources later in the order. */
static void test_discover_broken_is_error(void **state)
{
	(void)state;
	char *j = sa_json("service_account", "later@p", pem_a, NULL);
	write_file(tpath("later.json"), j);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", tpath("later.json"), 1);
	setenv("GOOGLE_KEYFILE_DICT", j, 1);

	setenv("GOOGLE_KEY_PATH", tpath("nothing-here.json"), 1);
	char want[600];
	snprintf(want, sizeof(want), "GOOGLE_KEY_PATH=%s: no such file", tpath("nothing-here.json"));
	expect_new_error(NULL, want);
	unsetenv("GOOGLE_KEY_PATH");
	unsetenv("GOOGLE_APPLICATION_CREDENTIALS");

	setenv("GC_KEYFILE_DICT", "{\"type\": \"service_account\",", 1);
	expect_new_error(NULL, "GC_KEYFILE_DICT: not valid JSON");
	setenv("GC_KEYFILE_DICT", "{\"type\": \"service_account\"}", 1);
	expect_new_error(NULL, "GC_KEYFILE_DICT: no \"private_key\"");
	unsetenv("GC_KEYFILE_DICT");
	unsetenv("GOOGLE_KEYFILE_DICT");

	/* the default mount: absent is skipped, present but broken is an error */
	write_file(tpath("def-broken.json"), "not json at all");
	setenv("GCSMOUNT_DEFAULT_KEY_PATH", tpath("def-broken.json"), 1);
	expect_new_error(NULL, "not valid JSON");
	env_reset(NULL);

	/* gcloud's ADC file of an unsupported type */
	mkdir(tpath("gcloud-ext"), 0700);
	write_file(tpath("gcloud-ext/application_default_credentials.json"),
		   "{\"type\": \"external_account\", \"audience\": \"x\"}");
	setenv("CLOUDSDK_CONFIG", tpath("gcloud-ext"), 1);
	expect_new_error(NULL, "\"external_account\"");
	expect_new_error(NULL, "not supported");
	unsetenv("CLOUDSDK_CONFIG");

	/* options */
	struct auth_config both = {.key_file = tpath("later.json"), .token_file = tpath("t")};
	expect_new_error(&both, "choose one");
	struct auth_config kf = {.key_file = tpath("absent.json")};
	expect_new_error(&kf, "key_file=");
	struct auth_config tf = {.token_file = tpath("absent-token")};
	expect_new_error(&tf, "token_file=");
	write_file(tpath("empty-token"), " \n");
	tf.token_file = tpath("empty-token");
	expect_new_error(&tf, "empty");
	write_file(tpath("two-tokens"), "abc def\n");
	tf.token_file = tpath("two-tokens");
	expect_new_error(&tf, "spaces or control characters");

	/* metadata host named but nobody answers: an error, not a fall-through */
	setenv("GCE_METADATA_HOST", "127.0.0.1:1", 1);
	expect_new_error(NULL, "GCE_METADATA_HOST=127.0.0.1:1: no metadata server answers");
	unsetenv("GCE_METADATA_HOST");
	free(j);
}

static void test_token_file(void **state)
{
	(void)state;
	write_file(tpath("token"), "ya29.first-token \t\r\n\n");
	struct auth_config cfg = {.token_file = tpath("token")};
	char err[512], hdr[256];
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(strstr(auth_source(a), "token_file="));
	assert_null(strstr(auth_source(a), "ya29"));
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	assert_string_equal(hdr, "Authorization: Bearer ya29.first-token");
	assert_int_equal(auth_refresh_count(a), 1);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	assert_int_equal(auth_refresh_count(a), 1);

	/* rotated by someone else; a 401 makes us look at once */
	write_file(tpath("token"), "ya29.second\n");
	auth_invalidate(a, "Authorization: Bearer ya29.first-token");
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	assert_string_equal(hdr, "Authorization: Bearer ya29.second");
	assert_int_equal(auth_refresh_count(a), 2);

	/* a broken replacement keeps the previous token (refused again: the
	 * file is looked at again once TOKEN_FAIL_HOLD_MS has passed) */
	write_file(tpath("token"), "\n");
	auth_invalidate(a, hdr);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "refused (HTTP 401)"));
	token_sleep_ms(TOKEN_FAIL_HOLD_MS);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	assert_string_equal(hdr, "Authorization: Bearer ya29.second");

	/* the buffer is too small: -ERANGE, nothing leaks into out */
	char small[16];
	assert_int_equal(auth_header(a, small, sizeof(small), err, sizeof(err)), -ERANGE);
	auth_free(a);
}

/* ------------------------------------------------------------------ */
/* refresh margin and the token cache (fake clock, fake fetch)        */

static void test_margin(void **state)
{
	(void)state;
	assert_int_equal(token_margin_ms(3600 * 1000), 300 * 1000);      /* 1 h: 5 min */
	assert_int_equal(token_margin_ms(1200 * 1000), 300 * 1000);      /* 20 min: 5 min */
	assert_int_equal(token_margin_ms(600 * 1000), 150 * 1000);       /* 10 min: 1/4 */
	assert_int_equal(token_margin_ms(60 * 1000), 15 * 1000);
	assert_int_equal(token_margin_ms(1000), 250);
	assert_int_equal(token_margin_ms(0), 0);
	assert_int_equal(token_margin_ms(-5), 0);
}

static int64_t fake_now;
static int64_t fake_clock(void) { return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST); }
static void fake_advance(int64_t ms) { __atomic_add_fetch(&fake_now, ms, __ATOMIC_SEQ_CST); }

struct fake {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	int rc;                 /* what the next fetch returns */
	long life;
	int block;              /* fetch waits until block == 0 */
	int in_fetch;
	int sleep_ms;
};

static int fake_fetch(void *ctx, struct buf *token, long *life, char *err, size_t errlen)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->mu);
	int n = ++f->calls;
	f->in_fetch = 1;
	pthread_cond_broadcast(&f->cv);
	while (f->block)
		pthread_cond_wait(&f->cv, &f->mu);
	int rc = f->rc;
	long l = f->life;
	int sl = f->sleep_ms;
	pthread_mutex_unlock(&f->mu);
	if (sl)
		token_sleep_ms(sl);
	pthread_mutex_lock(&f->mu);
	f->in_fetch = 0;
	pthread_mutex_unlock(&f->mu);
	if (rc) {
		snprintf(err, errlen, "fake failure %d", n);
		return rc;
	}
	buf_printf(token, "tok-%d", n);
	*life = l;
	return 0;
}

static void fake_init(struct fake *f, struct token_cache *c)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	f->life = 3600;
	fake_now = 1000000;
	token_cache_init(c, fake_fetch, f);
	c->now_ms = fake_clock;
}

static void fake_destroy(struct fake *f, struct token_cache *c)
{
	token_cache_destroy(c);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
}

static int fake_calls(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	int n = f->calls;
	pthread_mutex_unlock(&f->mu);
	return n;
}

static void get_is(struct token_cache *c, const char *want)
{
	char out[128], err[256] = "";
	int rc = token_cache_get(c, out, sizeof(out), err, sizeof(err));
	if (rc)
		fail_msg("token_cache_get: %d %s", rc, err);
	char full[128];
	snprintf(full, sizeof(full), "Authorization: Bearer %s", want);
	assert_string_equal(out, full);
}

static void test_cache_refresh_ahead(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	get_is(&c, "tok-1");
	get_is(&c, "tok-1");
	fake_advance(3600 * 1000 - 300 * 1000 - 1); /* 1 ms before the margin */
	get_is(&c, "tok-1");
	assert_int_equal(fake_calls(&f), 1);
	fake_advance(1);                             /* in the margin: refresh */
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 2);
	/* short-lived token: margin is a quarter */
	f.life = 100;
	fake_advance(3600 * 1000);
	get_is(&c, "tok-3");
	fake_advance(74 * 1000);
	get_is(&c, "tok-3");
	fake_advance(1000);
	get_is(&c, "tok-4");
	fake_destroy(&f, &c);
}

struct getter {
	struct token_cache *c;
	pthread_barrier_t *bar;
	char out[128];
	int rc;
	int64_t waited_ms;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	char err[256];
	if (g->bar)
		pthread_barrier_wait(g->bar);
	int64_t t0 = token_monotonic_ms();
	g->rc = token_cache_get(g->c, g->out, sizeof(g->out), err, sizeof(err));
	g->waited_ms = token_monotonic_ms() - t0;
	return NULL;
}

/* While one caller refreshes inside the margin, the others use the
 * still-valid token without waiting. */
static void test_cache_stale_while_refresh(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	get_is(&c, "tok-1");
	fake_advance(3500 * 1000);   /* in the margin, not expired */
	f.block = 1;
	struct getter g = {.c = &c};
	pthread_t th;
	pthread_create(&th, NULL, getter_main, &g);
	pthread_mutex_lock(&f.mu);
	while (!f.in_fetch)
		pthread_cond_wait(&f.cv, &f.mu);
	pthread_mutex_unlock(&f.mu);
	/* the refresh is in flight and blocked: others get tok-1 at once */
	for (int i = 0; i < 5; i++)
		get_is(&c, "tok-1");
	assert_int_equal(fake_calls(&f), 2);
	pthread_mutex_lock(&f.mu);
	f.block = 0;
	pthread_cond_broadcast(&f.cv);
	pthread_mutex_unlock(&f.mu);
	pthread_join(th, NULL);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.out, "Authorization: Bearer tok-2");
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 2);
	fake_destroy(&f, &c);
}

/* 16 threads at the moment of expiry: exactly one fetch, all get it. */
static void test_cache_single_flight_at_expiry(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	get_is(&c, "tok-1");
	fake_advance(3600 * 1000);   /* expired */
	f.sleep_ms = 100;
	enum { N = 16 };
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, N);
	struct getter g[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		g[i] = (struct getter){.c = &c, .bar = &bar};
		pthread_create(&th[i], NULL, getter_main, &g[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	assert_int_equal(fake_calls(&f), 2);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].rc, 0);
		assert_string_equal(g[i].out, "Authorization: Bearer tok-2");
	}
	fake_destroy(&f, &c);
}

static void test_cache_failures(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	char out[128], err[256];

	/* first fetch fails: the error comes back */
	f.rc = -EACCES;
	assert_int_equal(token_cache_get(&c, out, sizeof(out), err, sizeof(err)), -EACCES);
	assert_string_equal(err, "fake failure 1");
	/* within TOKEN_FAIL_HOLD_MS the failure is shared, no new fetch */
	assert_int_equal(token_cache_get(&c, out, sizeof(out), err, sizeof(err)), -EACCES);
	assert_int_equal(fake_calls(&f), 1);
	fake_advance(TOKEN_FAIL_HOLD_MS);
	f.rc = 0;
	get_is(&c, "tok-2");

	/* a failed early refresh keeps the valid token and waits before retrying */
	fake_advance(3500 * 1000);
	f.rc = -EIO;
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 3);
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 3);
	fake_advance(TOKEN_RETRY_AFTER_MS);
	f.rc = 0;
	get_is(&c, "tok-4");

	/* expired and the endpoint down: waiters share the one failure */
	fake_advance(3600 * 1000);
	f.rc = -EIO;
	f.sleep_ms = 50;
	enum { N = 8 };
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, N);
	struct getter g[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		g[i] = (struct getter){.c = &c, .bar = &bar};
		pthread_create(&th[i], NULL, getter_main, &g[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < N; i++)
		assert_int_equal(g[i].rc, -EIO);
	assert_int_equal(fake_calls(&f), 5);
	fake_destroy(&f, &c);
}

static void test_cache_invalidate(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	get_is(&c, "tok-1");
	token_cache_invalidate(&c, "Authorization: Bearer tok-other");
	get_is(&c, "tok-1");
	assert_int_equal(fake_calls(&f), 1);
	token_cache_invalidate(&c, "Authorization: Bearer tok-1");
	get_is(&c, "tok-2");
	/* a late 401 for the old token does not throw away the new one */
	token_cache_invalidate(&c, "Authorization: Bearer tok-1");
	get_is(&c, "tok-2");
	assert_int_equal(fake_calls(&f), 2);
	fake_destroy(&f, &c);
}

/* A token the server refused is replaced at once, but its replacement,
 * refused too, is not replaced again within TOKEN_FAIL_HOLD_MS. */
static void test_cache_refused_replacement_limit(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	char out[128], err[256];
	get_is(&c, "tok-1");
	token_cache_invalidate(&c, "Authorization: Bearer tok-1");
	get_is(&c, "tok-2");
	token_cache_invalidate(&c, "Authorization: Bearer tok-2");
	for (int i = 0; i < 50; i++) {
		assert_int_equal(token_cache_get(&c, out, sizeof(out), err, sizeof(err)), -EACCES);
		assert_non_null(strstr(err, "refused (HTTP 401)"));
	}
	assert_int_equal(fake_calls(&f), 2);
	fake_advance(TOKEN_FAIL_HOLD_MS - 1);
	assert_int_equal(token_cache_get(&c, out, sizeof(out), err, sizeof(err)), -EACCES);
	fake_advance(1);
	get_is(&c, "tok-3");
	/* a token that served for a while and is then refused is replaced at once */
	fake_advance(10 * 1000);
	token_cache_invalidate(&c, "Authorization: Bearer tok-3");
	get_is(&c, "tok-4");
	assert_int_equal(fake_calls(&f), 4);
	fake_destroy(&f, &c);
}

/* An answer that says the token has already expired: the token is used, for
 * TOKEN_EXPIRED_USE_S at most, and the note says why it may be refused. */
static void test_cache_expired_answer(void **state)
{
	(void)state;
	struct fake f;
	struct token_cache c;
	fake_init(&f, &c);
	char note[256];
	f.life = 0;
	get_is(&c, "tok-1");
	token_cache_note(&c, note, sizeof(note));
	assert_non_null(strstr(note, "already expired"));
	int64_t margin = token_margin_ms(TOKEN_EXPIRED_USE_S * 1000);
	fake_advance(TOKEN_EXPIRED_USE_S * 1000 - margin - 1);
	get_is(&c, "tok-1");
	assert_int_equal(fake_calls(&f), 1);
	fake_advance(1);
	f.life = -300;
	get_is(&c, "tok-2");
	f.life = 3600;
	fake_advance(TOKEN_EXPIRED_USE_S * 1000);
	get_is(&c, "tok-3");
	token_cache_note(&c, note, sizeof(note));
	assert_string_equal(note, "");
	assert_int_equal(fake_calls(&f), 3);
	fake_destroy(&f, &c);
}

/* ------------------------------------------------------------------ */
/* a tiny HTTP server on 127.0.0.1                                    */

struct srv {
	int fd;
	int port;
	pthread_t th;
	pthread_mutex_t mu;
	int stop;
	/* answer */
	int status;             /* 0: a token answer */
	char body[1024];        /* for status != 0 */
	int expires_in;
	int delay_ms;
	int need_flavor;        /* 403 without Metadata-Flavor: Google */
	int transient;          /* > 0: answer status/body this many times, then tokens */
	/* record */
	int requests;           /* all requests */
	int token_requests;     /* requests whose path holds "token" */
	char last[16384];       /* last token request, headers and body */
};

static struct srv S;

static void srv_handle(int cfd)
{
	char req[16384];
	size_t n = 0;
	char *hend = NULL;
	while (n + 1 < sizeof(req)) {
		ssize_t r = read(cfd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			return;
		n += (size_t)r;
		req[n] = '\0';
		if ((hend = strstr(req, "\r\n\r\n")))
			break;
	}
	if (!hend)
		return;
	size_t clen = 0;
	for (char *p = req; p < hend; p = strstr(p, "\r\n") + 2)
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			clen = strtoul(p + 15, NULL, 10);
	size_t have = n - (size_t)(hend + 4 - req);
	while (have < clen && n + 1 < sizeof(req)) {
		ssize_t r = read(cfd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		have += (size_t)r;
	}
	req[n] = '\0';

	pthread_mutex_lock(&S.mu);
	S.requests++;
	int is_token = strstr(req, "token") && strstr(req, "token") < strstr(req, " HTTP/1.1");
	int num = is_token ? ++S.token_requests : 0;
	if (is_token)
		snprintf(S.last, sizeof(S.last), "%s", req);
	int status = S.status, delay = S.delay_ms, exp = S.expires_in;
	if (is_token && S.transient > 0 && --S.transient == 0)
		S.status = 0;
	char body[1024];
	snprintf(body, sizeof(body), "%s", S.body);
	if (S.need_flavor && !strcasestr(req, "\r\nMetadata-Flavor: Google\r\n")) {
		status = 403;
		snprintf(body, sizeof(body), "missing Metadata-Flavor");
	}
	pthread_mutex_unlock(&S.mu);

	if (!is_token) {
		status = 200;
		snprintf(body, sizeof(body), "computeMetadata/\n");
	} else if (status == 0) {
		status = 200;
		snprintf(body, sizeof(body),
			 "{\"access_token\":\"ya29.tok-%d\",\"expires_in\":%d,\"token_type\":\"Bearer\"}",
			 num, exp);
	}
	if (delay)
		token_sleep_ms(delay);
	char resp[2048];
	int len = snprintf(resp, sizeof(resp),
			   "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
			   "Connection: close\r\n\r\n%s", status, strlen(body), body);
	ssize_t w = write(cfd, resp, (size_t)len);
	(void)w;
}

static void *srv_main(void *arg)
{
	(void)arg;
	for (;;) {
		int cfd = accept(S.fd, NULL, NULL);
		pthread_mutex_lock(&S.mu);
		int stop = S.stop;
		pthread_mutex_unlock(&S.mu);
		if (stop) {
			if (cfd >= 0)
				close(cfd);
			return NULL;
		}
		if (cfd < 0)
			continue;
		srv_handle(cfd);
		close(cfd);
	}
}

static int srv_start(void **state)
{
	(void)state;
	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.mu, NULL);
	S.expires_in = 3600;
	S.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	setsockopt(S.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(S.fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(S.fd, 64))
		return -1;
	socklen_t sl = sizeof(sa);
	getsockname(S.fd, (struct sockaddr *)&sa, &sl);
	S.port = ntohs(sa.sin_port);
	pthread_create(&S.th, NULL, srv_main, NULL);
	return env_reset(NULL);
}

static int srv_stop(void **state)
{
	(void)state;
	pthread_mutex_lock(&S.mu);
	S.stop = 1;
	pthread_mutex_unlock(&S.mu);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		shutdown(S.fd, SHUT_RDWR);
	close(c);
	pthread_join(S.th, NULL);
	close(S.fd);
	pthread_mutex_destroy(&S.mu);
	return 0;
}

static void srv_answer(int status, const char *body)
{
	pthread_mutex_lock(&S.mu);
	S.status = status;
	snprintf(S.body, sizeof(S.body), "%s", body ? body : "");
	pthread_mutex_unlock(&S.mu);
}

static int srv_token_requests(void)
{
	pthread_mutex_lock(&S.mu);
	int n = S.token_requests;
	pthread_mutex_unlock(&S.mu);
	return n;
}

static char *srv_token_uri(void)
{
	static char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/token", S.port);
	return u;
}

/* The assertion of the last JWT exchange; checks the request shape. */
static char *last_assertion(void)
{
	pthread_mutex_lock(&S.mu);
	char *req = strdup(S.last);
	pthread_mutex_unlock(&S.mu);
	assert_true(strncmp(req, "POST /token HTTP/1.1\r\n", 22) == 0);
	assert_non_null(strcasestr(req, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
	char *body = strstr(req, "\r\n\r\n") + 4;
	const char *pfx = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
	assert_true(strncmp(body, pfx, strlen(pfx)) == 0);
	char *a = strdup(body + strlen(pfx));
	free(req);
	return a;
}

static cJSON *jwt_claims_of(const char *jwt, EVP_PKEY *pub)
{
	const char *d1 = strchr(jwt, '.');
	const char *d2 = strrchr(jwt, '.');
	assert_true(d1 && d2 && d1 < d2);
	struct buf sig = BUF_INIT, cl = BUF_INIT;
	assert_int_equal(jwt_base64url_decode(&sig, d2 + 1, strlen(d2 + 1)), 0);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	assert_int_equal(EVP_DigestVerify(md, (unsigned char *)sig.data, sig.len,
					  (const unsigned char *)jwt, (size_t)(d2 - jwt)), 1);
	EVP_MD_CTX_free(md);
	assert_int_equal(jwt_base64url_decode(&cl, d1 + 1, (size_t)(d2 - d1 - 1)), 0);
	cJSON *j = cJSON_Parse(cl.data);
	assert_non_null(j);
	buf_free(&sig);
	buf_free(&cl);
	return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static struct auth *sa_auth(const char *file, EVP_PKEY *unused, const char *email,
			    const char *pem, const char *scope)
{
	(void)unused;
	char *j = sa_json("service_account", email, pem, srv_token_uri());
	write_file(tpath(file), j);
	free(j);
	struct auth_config cfg = {.key_file = tpath(file), .scope = scope};
	char err[512];
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	if (!a)
		fail_msg("auth_new: %s", err);
	return a;
}

static void hdr_is(struct auth *a, const char *want)
{
	char hdr[512], err[512] = "";
	int rc = auth_header(a, hdr, sizeof(hdr), err, sizeof(err));
	if (rc)
		fail_msg("auth_header: %d %s", rc, err);
	assert_string_equal(hdr, want);
}

static void test_http_jwt_exchange(void **state)
{
	(void)state;
	struct auth *a = sa_auth("http-sa.json", key_a, "a@p.iam.gserviceaccount.com", pem_a, NULL);
	assert_int_equal(auth_refresh_count(a), 0); /* auth_new does not fetch */
	assert_int_equal(srv_token_requests(), 0);
	time_t t0 = time(NULL);
	hdr_is(a, "Authorization: Bearer ya29.tok-1");
	hdr_is(a, "Authorization: Bearer ya29.tok-1");
	assert_int_equal(srv_token_requests(), 1);
	assert_int_equal(auth_refresh_count(a), 1);

	char *as = last_assertion();
	cJSON *cl = jwt_claims_of(as, key_a);
	assert_string_equal(jstr(cl, "iss"), "a@p.iam.gserviceaccount.com");
	assert_string_equal(jstr(cl, "aud"), srv_token_uri());
	assert_string_equal(jstr(cl, "scope"), "https://www.googleapis.com/auth/devstorage.read_write");
	double iat = cJSON_GetObjectItem(cl, "iat")->valuedouble;
	double exp = cJSON_GetObjectItem(cl, "exp")->valuedouble;
	assert_true(iat >= (double)t0 - 1 && iat <= (double)time(NULL) + 1);
	assert_true(exp == iat + 3600);
	cJSON_Delete(cl);
	free(as);
	auth_free(a);

	/* a configured scope goes into the claims */
	a = sa_auth("http-sa.json", key_a, "a@p", pem_a,
		    "https://www.googleapis.com/auth/devstorage.read_only");
	hdr_is(a, "Authorization: Bearer ya29.tok-2");
	as = last_assertion();
	cl = jwt_claims_of(as, key_a);
	assert_string_equal(jstr(cl, "scope"), "https://www.googleapis.com/auth/devstorage.read_only");
	cJSON_Delete(cl);
	free(as);
	auth_free(a);
}

struct hgetter {
	struct auth *a;
	pthread_barrier_t *bar;
	char hdr[256];
	int rc;
};

static void *hgetter_main(void *arg)
{
	struct hgetter *g = arg;
	char err[256];
	pthread_barrier_wait(g->bar);
	g->rc = auth_header(g->a, g->hdr, sizeof(g->hdr), err, sizeof(err));
	return NULL;
}

/* 16 threads at the moment of expiry cause exactly one token request. */
static void test_http_16_threads_one_refresh(void **state)
{
	(void)state;
	S.expires_in = 1;          /* lifetime 1 s, margin 250 ms */
	S.delay_ms = 200;          /* the refresh takes a while: the threads overlap it */
	int base = srv_token_requests();
	struct auth *a = sa_auth("http-16.json", key_a, "a@p", pem_a, NULL);
	char want[64];
	snprintf(want, sizeof(want), "Authorization: Bearer ya29.tok-%d", base + 1);
	hdr_is(a, want);
	token_sleep_ms(1300);      /* expired */
	enum { N = 16 };
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, N);
	struct hgetter g[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		g[i] = (struct hgetter){.a = a, .bar = &bar};
		pthread_create(&th[i], NULL, hgetter_main, &g[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	assert_int_equal(srv_token_requests(), base + 2);
	assert_int_equal(auth_refresh_count(a), 2);
	snprintf(want, sizeof(want), "Authorization: Bearer ya29.tok-%d", base + 2);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].rc, 0);
		assert_string_equal(g[i].hdr, want);
	}
	S.expires_in = 3600;
	S.delay_ms = 0;
	auth_free(a);
}

/* A 401 invalidates that token once; a stale 401 does nothing. */
static void test_http_401_invalidate(void **state)
{
	(void)state;
	int base = srv_token_requests();
	struct auth *a = sa_auth("http-401.json", key_a, "a@p", pem_a, NULL);
	char first[256], second[256], err[256];
	assert_int_equal(auth_header(a, first, sizeof(first), err, sizeof(err)), 0);
	auth_invalidate(a, first);
	assert_int_equal(auth_header(a, second, sizeof(second), err, sizeof(err)), 0);
	assert_string_not_equal(first, second);
	assert_int_equal(srv_token_requests(), base + 2);
	auth_invalidate(a, first);            /* another thread's late 401 */
	hdr_is(a, second);
	assert_int_equal(srv_token_requests(), base + 2);
	assert_int_equal(auth_refresh_count(a), 2);
	auth_free(a);
}

/* An answer with expires_in <= 0 gives a token that is used (not fetched
 * again on every call), and a note naming the endpoint and the value. */
static void test_http_expired_answer(void **state)
{
	(void)state;
	S.expires_in = -30;
	int base = srv_token_requests();
	struct auth *a = sa_auth("http-expired.json", key_a, "a@p", pem_a, NULL);
	char want[64], note[256];
	snprintf(want, sizeof(want), "Authorization: Bearer ya29.tok-%d", base + 1);
	for (int i = 0; i < 5; i++)
		hdr_is(a, want);
	assert_int_equal(srv_token_requests(), base + 1);
	auth_refusal_note(a, note, sizeof(note));
	assert_non_null(strstr(note, "expires_in=-30"));
	assert_non_null(strstr(note, srv_token_uri()));
	auth_free(a);
	S.expires_in = 3600;
}

/* One exchange against a canned answer, with a fresh auth each time. */
static int one_exchange(int status, const char *body, char *err, size_t errlen, int *requests)
{
	srv_answer(status, body);
	struct auth *a = sa_auth("http-err.json", key_a, "a@p", pem_a, NULL);
	int base = srv_token_requests();
	char hdr[256];
	int rc = auth_header(a, hdr, sizeof(hdr), err, errlen);
	*requests = srv_token_requests() - base;
	if (rc)
		assert_int_equal(auth_refresh_count(a), 0);
	auth_free(a);
	srv_answer(0, NULL);
	return rc;
}

static void test_http_errors(void **state)
{
	(void)state;
	char err[512];
	int n;

	assert_int_equal(one_exchange(400, "{\"error\":\"invalid_grant\",\"error_description\":"
				      "\"Invalid JWT Signature.\"}", err, sizeof(err), &n), -EACCES);
	assert_non_null(strstr(err, "invalid_grant: Invalid JWT Signature."));
	assert_non_null(strstr(err, "HTTP 400"));
	assert_non_null(strstr(err, srv_token_uri()));
	assert_int_equal(n, 1); /* refused: no retry */

	assert_int_equal(one_exchange(401, "{\"error\":\"unauthorized_client\"}", err, sizeof(err), &n),
			 -EACCES);
	assert_non_null(strstr(err, "unauthorized_client"));
	assert_int_equal(one_exchange(403, "{\"error\":\"access_denied\"}", err, sizeof(err), &n),
			 -EACCES);
	assert_non_null(strstr(err, "access_denied"));

	assert_int_equal(one_exchange(503, "backend unavailable", err, sizeof(err), &n), -EIO);
	assert_non_null(strstr(err, "HTTP 503"));
	assert_non_null(strstr(err, "after retries"));
	assert_int_equal(n, TOKEN_ATTEMPTS); /* retried */

	assert_int_equal(one_exchange(404, "no such path", err, sizeof(err), &n), -EIO);
	assert_int_equal(n, 1);

	assert_int_equal(one_exchange(200, "<html>not json</html>", err, sizeof(err), &n), -EIO);
	assert_non_null(strstr(err, "not a JSON object"));
	assert_int_equal(n, 1);

	assert_int_equal(one_exchange(200, "{\"access_token\":\"bad token\\r\\nX-Injected: 1\","
				      "\"expires_in\":3600}", err, sizeof(err), &n), -EIO);
	assert_non_null(strstr(err, "not allowed in a header"));

	/* plain success */
	assert_int_equal(one_exchange(0, NULL, err, sizeof(err), &n), 0);
	assert_int_equal(n, 1);

	/* a transient 503, then success: the retry gets the token */
	pthread_mutex_lock(&S.mu);
	S.transient = TOKEN_ATTEMPTS - 1;
	pthread_mutex_unlock(&S.mu);
	assert_int_equal(one_exchange(503, "{\"error\":\"internal_failure\"}", err, sizeof(err), &n), 0);
	assert_int_equal(n, TOKEN_ATTEMPTS);

	/* nobody listening: -EIO naming the endpoint */
	char *j = sa_json("service_account", "a@p", pem_a, "http://127.0.0.1:1/token");
	write_file(tpath("http-dead.json"), j);
	free(j);
	struct auth_config cfg = {.key_file = tpath("http-dead.json")};
	char hdr[256];
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "http://127.0.0.1:1/token"));
	assert_non_null(strstr(err, "no answer"));
	/* the failure is shared for a moment rather than retried by every caller */
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), -EIO);
	assert_int_equal(auth_refresh_count(a), 0);
	auth_free(a);
}

static void test_token_error_text(void **state)
{
	(void)state;
	char out[256];
	const char *b = "{\"error\":\"invalid_grant\",\"error_description\":\"Bad\\nRequest\"}";
	token_error_text(b, strlen(b), out, sizeof(out));
	assert_string_equal(out, "invalid_grant: Bad Request");
	b = "{\"error\":{\"code\":401,\"message\":\"Login Required.\"}}";
	token_error_text(b, strlen(b), out, sizeof(out));
	assert_string_equal(out, "Login Required.");
	b = "plain\ntext";
	token_error_text(b, strlen(b), out, sizeof(out));
	assert_string_equal(out, "\"plain text\"");
	token_error_text("", 0, out, sizeof(out));
	assert_string_equal(out, "(empty answer)");

	struct buf tok = BUF_INIT;
	long life = 0;
	char err[128];
	b = "{\"access_token\":\"t\",\"expires_in\":\"120\"}";
	assert_int_equal(token_parse_response(b, strlen(b), &tok, &life, err, sizeof(err)), 0);
	assert_string_equal(tok.data, "t");
	assert_int_equal(life, 120);
	b = "{\"access_token\":\"t\"}";
	assert_int_equal(token_parse_response(b, strlen(b), &tok, &life, err, sizeof(err)), 0);
	assert_int_equal(life, TOKEN_DEFAULT_LIFETIME);
	b = "{\"expires_in\":5}";
	assert_int_equal(token_parse_response(b, strlen(b), &tok, &life, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "no \"access_token\""));
	/* expired answers are passed on as they are; nonsense is the usual hour */
	static const struct { const char *body; long life; } lives[] = {
		{"{\"access_token\":\"t\",\"expires_in\":0}", 0},
		{"{\"access_token\":\"t\",\"expires_in\":-30}", -30},
		{"{\"access_token\":\"t\",\"expires_in\":\"-5\"}", -5},
		{"{\"access_token\":\"t\",\"expires_in\":0.5}", 0},
		{"{\"access_token\":\"t\",\"expires_in\":-1e30}", -1000000000L},
		{"{\"access_token\":\"t\",\"expires_in\":1e30}", TOKEN_DEFAULT_LIFETIME},
		{"{\"access_token\":\"t\",\"expires_in\":\"soon\"}", TOKEN_DEFAULT_LIFETIME},
		{"{\"access_token\":\"t\",\"expires_in\":\"nan\"}", TOKEN_DEFAULT_LIFETIME},
		{"{\"access_token\":\"t\",\"expires_in\":null}", TOKEN_DEFAULT_LIFETIME},
	};
	for (size_t i = 0; i < sizeof(lives) / sizeof(lives[0]); i++) {
		b = lives[i].body;
		assert_int_equal(token_parse_response(b, strlen(b), &tok, &life, err, sizeof(err)), 0);
		if (life != lives[i].life)
			fail_msg("%s: life %ld, want %ld", b, life, lives[i].life);
	}
	buf_free_secret(&tok);
}

/* Key rotation: a Kubernetes-style ..data symlink swap is picked up at
 * the next refresh; a broken replacement keeps the previous key. */
static void test_http_key_rotation(void **state)
{
	(void)state;
	char *ja = sa_json("service_account", "old@p", pem_a, srv_token_uri());
	char *jb = sa_json("service_account", "new@p", pem_b, srv_token_uri());
	mkdir(tpath("rot"), 0700);
	mkdir(tpath("rot/v1"), 0700);
	mkdir(tpath("rot/v2"), 0700);
	mkdir(tpath("rot/v3"), 0700);
	write_file(tpath("rot/v1/key.json"), ja);
	write_file(tpath("rot/v2/key.json"), jb);
	write_file(tpath("rot/v3/key.json"), "{\"type\": \"service_account\", \"private_key\": ");
	unlink(tpath("rot/..data"));
	assert_int_equal(symlink("v1", tpath("rot/..data")), 0);
	unlink(tpath("rot/key.json"));
	assert_int_equal(symlink("..data/key.json", tpath("rot/key.json")), 0);

	struct auth_config cfg = {.key_file = tpath("rot/key.json")};
	char err[512], hdr[256];
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	char *as = last_assertion();
	cJSON *cl = jwt_claims_of(as, key_a);
	assert_string_equal(jstr(cl, "iss"), "old@p");
	cJSON_Delete(cl);
	free(as);

	/* swap ..data atomically, as the kubelet does */
	assert_int_equal(symlink("v2", tpath("rot/..data_tmp")), 0);
	assert_int_equal(rename(tpath("rot/..data_tmp"), tpath("rot/..data")), 0);
	auth_invalidate(a, hdr);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	as = last_assertion();
	cl = jwt_claims_of(as, key_b); /* signed by the new key */
	assert_string_equal(jstr(cl, "iss"), "new@p");
	cJSON_Delete(cl);
	free(as);

	/* a broken replacement: one error line, the refresh uses the old key
	 * (a token refused right after it replaced a refused one is replaced
	 * once TOKEN_FAIL_HOLD_MS has passed) */
	assert_int_equal(symlink("v3", tpath("rot/..data_tmp")), 0);
	assert_int_equal(rename(tpath("rot/..data_tmp"), tpath("rot/..data")), 0);
	auth_invalidate(a, hdr);
	token_sleep_ms(TOKEN_FAIL_HOLD_MS);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	as = last_assertion();
	cl = jwt_claims_of(as, key_b);
	assert_string_equal(jstr(cl, "iss"), "new@p");
	cJSON_Delete(cl);
	free(as);
	assert_int_equal(auth_refresh_count(a), 3);
	auth_free(a);
	free(ja);
	free(jb);
}

static void test_http_authorized_user(void **state)
{
	(void)state;
	char *j = au_json("1//refresh+tok", srv_token_uri());
	mkdir(tpath("gcloud-au"), 0700);
	write_file(tpath("gcloud-au/application_default_credentials.json"), j);
	free(j);
	setenv("CLOUDSDK_CONFIG", tpath("gcloud-au"), 1);
	char err[512], hdr[256];
	struct auth_config cfg = {0};
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	unsetenv("CLOUDSDK_CONFIG");
	assert_non_null(a);
	assert_non_null(strstr(auth_source(a), "authorized user"));
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	assert_non_null(strstr(hdr, "Authorization: Bearer ya29.tok-"));
	pthread_mutex_lock(&S.mu);
	char *body = strstr(S.last, "\r\n\r\n") + 4;
	assert_string_equal(body, "grant_type=refresh_token&client_id=cid.apps.googleusercontent.com"
				  "&client_secret=s3cr3t%26%3Dx&refresh_token=1%2F%2Frefresh%2Btok");
	assert_true(strncmp(S.last, "POST /token ", 12) == 0);
	pthread_mutex_unlock(&S.mu);
	auth_free(a);
}

static void test_http_metadata(void **state)
{
	(void)state;
	char host[64], err[512], hdr[256];
	snprintf(host, sizeof(host), "127.0.0.1:%d", S.port);
	setenv("GCE_METADATA_HOST", host, 1);
	S.need_flavor = 1;
	struct auth_config cfg = {0};
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(strstr(auth_source(a), "metadata server at 127.0.0.1"));
	assert_non_null(strstr(auth_source(a), "GCE_METADATA_HOST"));
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	assert_non_null(strstr(hdr, "Authorization: Bearer ya29.tok-"));
	pthread_mutex_lock(&S.mu);
	assert_true(strncmp(S.last, "GET /computeMetadata/v1/instance/service-accounts/default/token "
			    "HTTP/1.1\r\n", 72) == 0);
	pthread_mutex_unlock(&S.mu);
	assert_int_equal(auth_refresh_count(a), 1);
	auth_free(a);

	/* GCE_METADATA_ROOT (older name), with a scope */
	unsetenv("GCE_METADATA_HOST");
	setenv("GCE_METADATA_ROOT", host, 1);
	cfg.scope = "https://www.googleapis.com/auth/devstorage.full_control";
	a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	pthread_mutex_lock(&S.mu);
	assert_non_null(strstr(S.last, "/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2F"
				       "devstorage.full_control HTTP/1.1"));
	pthread_mutex_unlock(&S.mu);
	auth_free(a);
	unsetenv("GCE_METADATA_ROOT");
	S.need_flavor = 0;
}

/* ------------------------------------------------------------------ */

static void rm_tree(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	if (http_global_init() != 0)
		return 1;
	key_a = gen_key(EVP_PKEY_RSA, 2048);
	key_b = gen_key(EVP_PKEY_RSA, 2048);
	EVP_PKEY *ec = gen_key(EVP_PKEY_EC, 0);
	pem_a = to_pem(key_a);
	pem_b = to_pem(key_b);
	pem_ec = to_pem(ec);
	EVP_PKEY_free(ec);

	const struct CMUnitTest pure[] = {
		cmocka_unit_test(test_key_good),
		cmocka_unit_test(test_key_escaped_newlines),
		cmocka_unit_test(test_key_errors),
		cmocka_unit_test(test_key_authorized_user),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_margin),
		cmocka_unit_test(test_token_error_text),
		cmocka_unit_test(test_cache_refresh_ahead),
		cmocka_unit_test(test_cache_stale_while_refresh),
		cmocka_unit_test(test_cache_single_flight_at_expiry),
		cmocka_unit_test(test_cache_failures),
		cmocka_unit_test(test_cache_invalidate),
		cmocka_unit_test(test_cache_refused_replacement_limit),
		cmocka_unit_test(test_cache_expired_answer),
	};
	const struct CMUnitTest discovery[] = {
		cmocka_unit_test_setup(test_discover_nothing, env_reset),
		cmocka_unit_test_setup(test_discover_anonymous, env_reset),
		cmocka_unit_test_setup(test_discover_order, env_reset),
		cmocka_unit_test_setup(test_discover_broken_is_error, env_reset),
		cmocka_unit_test_setup(test_token_file, env_reset),
	};
	const struct CMUnitTest http[] = {
		cmocka_unit_test(test_http_jwt_exchange),
		cmocka_unit_test(test_http_16_threads_one_refresh),
		cmocka_unit_test(test_http_401_invalidate),
		cmocka_unit_test(test_http_expired_answer),
		cmocka_unit_test(test_http_errors),
		cmocka_unit_test(test_http_key_rotation),
		cmocka_unit_test(test_http_authorized_user),
		cmocka_unit_test(test_http_metadata),
	};
	env_reset(NULL);
	int rc = cmocka_run_group_tests_name("auth: keys, margin, cache", pure, NULL, NULL);
	rc |= cmocka_run_group_tests_name("auth: discovery", discovery, env_reset, NULL);
	rc |= cmocka_run_group_tests_name("auth: token endpoint over HTTP", http, srv_start, srv_stop);

	EVP_PKEY_free(key_a);
	EVP_PKEY_free(key_b);
	free(pem_a);
	free(pem_b);
	free(pem_ec);
	http_global_cleanup();
	rm_tree(tmpdir);
	return rc;
}
