/* Unit tests of credential discovery: the order, anonymous, token_file, set-but-broken errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "auth/auth.h"
#include "auth/exchange.h"
#include "auth/token.h"
#include "auth_test_util.h"

static char *pem_a;

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

int main(void)
{
	if (auth_test_begin() != 0)
		return 1;
	EVP_PKEY *key_a = gen_key(EVP_PKEY_RSA, 2048);
	pem_a = to_pem(key_a);
	EVP_PKEY_free(key_a);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_discover_nothing, env_reset),
		cmocka_unit_test_setup(test_discover_anonymous, env_reset),
		cmocka_unit_test_setup(test_discover_order, env_reset),
		cmocka_unit_test_setup(test_discover_broken_is_error, env_reset),
		cmocka_unit_test_setup(test_token_file, env_reset),
	};
	int rc = cmocka_run_group_tests_name("auth: discovery", tests, env_reset, NULL);

	free(pem_a);
	auth_test_end();
	return rc;
}
