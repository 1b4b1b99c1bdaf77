/* Unit tests of auth/key: service-account and authorized_user key JSON, its errors, key files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth/file.h"
#include "auth/key.h"
#include "common/buf.h"
#include "auth_test_util.h"

static EVP_PKEY *key_a;
static char *pem_a, *pem_ec;

static int parse(const char *json, struct key *k, char *err, size_t errlen)
{
	err[0] = '\0';
	return key_parse(json, strlen(json), "TESTSRC", k, err, errlen);
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

int main(void)
{
	if (auth_test_begin() != 0)
		return 1;
	key_a = gen_key(EVP_PKEY_RSA, 2048);
	EVP_PKEY *ec = gen_key(EVP_PKEY_EC, 0);
	pem_a = to_pem(key_a);
	pem_ec = to_pem(ec);
	EVP_PKEY_free(ec);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_good),
		cmocka_unit_test(test_key_escaped_newlines),
		cmocka_unit_test(test_key_errors),
		cmocka_unit_test(test_key_authorized_user),
		cmocka_unit_test(test_key_files),
	};
	int rc = cmocka_run_group_tests_name("auth: keys", tests, NULL, NULL);

	EVP_PKEY_free(key_a);
	free(pem_a);
	free(pem_ec);
	auth_test_end();
	return rc;
}
