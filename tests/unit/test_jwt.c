/*
 * test_jwt: base64url against the RFC 4648 vectors, and the RS256 JWT:
 * three parts, header/claims decode to the expected JSON, the signature
 * verifies with the public key (EVP_DigestVerify) and breaks when tampered.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "auth/jwt.h"
#include "common/buf.h"

static EVP_PKEY *rsa_key;

static EVP_PKEY *gen_rsa(int bits)
{
	EVP_PKEY *k = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
	EVP_PKEY_CTX_free(ctx);
	return k;
}

static void enc_is(const char *in, size_t len, const char *want)
{
	struct buf b = BUF_INIT;
	jwt_base64url(&b, in, len);
	assert_non_null(b.data);
	assert_string_equal(b.data, want);
	struct buf d = BUF_INIT;
	assert_int_equal(jwt_base64url_decode(&d, b.data, b.len), 0);
	assert_int_equal(d.len, len);
	if (len)
		assert_memory_equal(d.data, in, len);
	buf_free(&b);
	buf_free(&d);
}

/* RFC 4648 section 10 vectors, padding dropped (JWS base64url). */
static void test_base64url_rfc4648(void **state)
{
	(void)state;
	enc_is("", 0, "");
	enc_is("f", 1, "Zg");
	enc_is("fo", 2, "Zm8");
	enc_is("foo", 3, "Zm9v");
	enc_is("foob", 4, "Zm9vYg");
	enc_is("fooba", 5, "Zm9vYmE");
	enc_is("foobar", 6, "Zm9vYmFy");
}

/* The URL-safe alphabet: '+' and '/' of base64 become '-' and '_'. */
static void test_base64url_alphabet(void **state)
{
	(void)state;
	enc_is("\xfb\xff", 2, "-_8");
	enc_is("\xfb\xef\xbe", 3, "----");
	enc_is("\xff\xff\xff", 3, "____");
	enc_is("\x00\x00\x00", 3, "AAAA");
}

static void test_base64url_decode(void **state)
{
	(void)state;
	struct buf d = BUF_INIT;
	assert_int_equal(jwt_base64url_decode(&d, "Zm9vYg==", 8), 0); /* padding tolerated */
	assert_string_equal(d.data, "foob");
	buf_reset(&d);
	assert_int_equal(jwt_base64url_decode(&d, "Zm9+", 4), -EINVAL); /* '+' is not base64url */
	buf_reset(&d);
	assert_int_equal(jwt_base64url_decode(&d, "Zm9vY", 5), -EINVAL); /* impossible length */
	buf_free(&d);
	/* Round trip of every length up to 300 over all byte values. */
	unsigned char raw[300];
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(raw); n++) {
		struct buf e = BUF_INIT, r = BUF_INIT;
		jwt_base64url(&e, raw, n);
		assert_null(strchr(e.data, '='));
		assert_int_equal(e.len, (n * 4 + 2) / 3);
		assert_int_equal(jwt_base64url_decode(&r, e.data, e.len), 0);
		assert_int_equal(r.len, n);
		if (n)
			assert_memory_equal(r.data, raw, n);
		buf_free(&e);
		buf_free(&r);
	}
}

static cJSON *decode_part(const char *s, size_t len)
{
	struct buf d = BUF_INIT;
	assert_int_equal(jwt_base64url_decode(&d, s, len), 0);
	cJSON *j = cJSON_ParseWithLength(d.data, d.len);
	assert_non_null(j);
	buf_free(&d);
	return j;
}

static int verify(EVP_PKEY *pub, const char *jwt)
{
	const char *dot2 = strrchr(jwt, '.');
	struct buf sig = BUF_INIT;
	assert_int_equal(jwt_base64url_decode(&sig, dot2 + 1, strlen(dot2 + 1)), 0);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	int ok = EVP_DigestVerify(md, (const unsigned char *)sig.data, sig.len,
				  (const unsigned char *)jwt, (size_t)(dot2 - jwt));
	EVP_MD_CTX_free(md);
	buf_free(&sig);
	return ok;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static void test_jwt_build_and_verify(void **state)
{
	(void)state;
	struct jwt_claims c = {
		.kid = "0123abcd",
		.iss = "sa@proj.iam.gserviceaccount.com",
		.scope = "https://www.googleapis.com/auth/devstorage.read_write",
		.aud = "https://oauth2.googleapis.com/token",
		.iat = 1700000000,
	};
	struct buf jwt = BUF_INIT;
	char err[256] = "";
	assert_int_equal(jwt_build(&jwt, rsa_key, &c, err, sizeof(err)), 0);

	/* three base64url parts */
	const char *d1 = strchr(jwt.data, '.');
	assert_non_null(d1);
	const char *d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	assert_null(strchr(jwt.data, '='));
	assert_null(strchr(jwt.data, '+'));
	assert_null(strchr(jwt.data, '/'));

	cJSON *h = decode_part(jwt.data, (size_t)(d1 - jwt.data));
	assert_string_equal(jstr(h, "alg"), "RS256");
	assert_string_equal(jstr(h, "typ"), "JWT");
	assert_string_equal(jstr(h, "kid"), "0123abcd");
	assert_int_equal(cJSON_GetArraySize(h), 3);
	cJSON_Delete(h);

	cJSON *cl = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
	assert_string_equal(jstr(cl, "iss"), c.iss);
	assert_string_equal(jstr(cl, "scope"), c.scope);
	assert_string_equal(jstr(cl, "aud"), c.aud);
	assert_true(jnum(cl, "iat") == 1700000000.0);
	assert_true(jnum(cl, "exp") == 1700000000.0 + 3600);
	assert_int_equal(cJSON_GetArraySize(cl), 5);
	cJSON_Delete(cl);

	/* RS256: 2048-bit key -> 256-byte signature -> 342 base64url chars */
	assert_int_equal(strlen(d2 + 1), 342);
	assert_int_equal(verify(rsa_key, jwt.data), 1);

	/* Tampering with the claims breaks the signature. */
	char *t = strdup(jwt.data);
	t[d1 - jwt.data + 5] = t[d1 - jwt.data + 5] == 'A' ? 'B' : 'A';
	assert_int_not_equal(verify(rsa_key, t), 1);
	free(t);

	/* Another key does not verify it. */
	EVP_PKEY *other = gen_rsa(1024);
	assert_int_not_equal(verify(other, jwt.data), 1);
	EVP_PKEY_free(other);
	buf_free_secret(&jwt);
}

static void test_jwt_no_kid_and_escaping(void **state)
{
	(void)state;
	struct jwt_claims c = {
		.kid = NULL,
		.iss = "odd\"name\\@x",
		.scope = "a b",
		.aud = "http://127.0.0.1:1/token",
		.iat = 42,
	};
	struct buf jwt = BUF_INIT;
	char err[256] = "";
	assert_int_equal(jwt_build(&jwt, rsa_key, &c, err, sizeof(err)), 0);
	const char *d1 = strchr(jwt.data, '.');
	const char *d2 = strchr(d1 + 1, '.');
	cJSON *h = decode_part(jwt.data, (size_t)(d1 - jwt.data));
	assert_null(cJSON_GetObjectItemCaseSensitive(h, "kid"));
	cJSON_Delete(h);
	cJSON *cl = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
	assert_string_equal(jstr(cl, "iss"), "odd\"name\\@x");
	assert_true(jnum(cl, "exp") == 42.0 + 3600);
	cJSON_Delete(cl);
	assert_int_equal(verify(rsa_key, jwt.data), 1);
	buf_free_secret(&jwt);
}

int main(void)
{
	rsa_key = gen_rsa(2048);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64url_rfc4648),
		cmocka_unit_test(test_base64url_alphabet),
		cmocka_unit_test(test_base64url_decode),
		cmocka_unit_test(test_jwt_build_and_verify),
		cmocka_unit_test(test_jwt_no_kid_and_escaping),
	};
	int rc = cmocka_run_group_tests_name("jwt", tests, NULL, NULL);
	EVP_PKEY_free(rsa_key);
	return rc;
}
