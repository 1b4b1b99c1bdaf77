/*
 * jwt: base64url and RS256 JWT assembly.
 *
 * The header and claims are built with cJSON so every string is escaped
 * properly; the signature is EVP_DigestSign with SHA-256 over
 * "b64url(header).b64url(claims)".
 */
#include "auth/jwt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void jwt_base64url(struct buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	buf_grow(out, (len + 2) / 3 * 4);
	size_t i = 0;
	for (; i + 3 <= len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		buf_putc(out, b64url_alphabet[v >> 18 & 63]);
		buf_putc(out, b64url_alphabet[v >> 12 & 63]);
		buf_putc(out, b64url_alphabet[v >> 6 & 63]);
		buf_putc(out, b64url_alphabet[v & 63]);
	}
	if (len - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		buf_putc(out, b64url_alphabet[v >> 18 & 63]);
		buf_putc(out, b64url_alphabet[v >> 12 & 63]);
	} else if (len - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		buf_putc(out, b64url_alphabet[v >> 18 & 63]);
		buf_putc(out, b64url_alphabet[v >> 12 & 63]);
		buf_putc(out, b64url_alphabet[v >> 6 & 63]);
	}
	buf_append(out, "", 0); /* NUL-terminated even when empty */
}

static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int jwt_base64url_decode(struct buf *out, const char *s, size_t len)
{
	while (len && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -EINVAL;
	unsigned acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value(s[i]);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf_putc(out, (char)(acc >> bits & 0xff));
		}
	}
	buf_append(out, "", 0); /* NUL-terminated even when empty */
	return 0;
}

/* Append b64url(JSON of obj) to out. */
static void append_json_b64(struct buf *out, cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	if (!text) {
		fprintf(stderr, "gcsmount: out of memory building a JWT\n");
		abort();
	}
	jwt_base64url(out, text, strlen(text));
	free(text);
}

int jwt_build(struct buf *out, EVP_PKEY *pkey, const struct jwt_claims *c,
	      char *err, size_t errlen)
{
	buf_reset(out);
	cJSON *hdr = cJSON_CreateObject();
	cJSON_AddStringToObject(hdr, "alg", "RS256");
	cJSON_AddStringToObject(hdr, "typ", "JWT");
	if (c->kid)
		cJSON_AddStringToObject(hdr, "kid", c->kid);
	cJSON *claims = cJSON_CreateObject();
	cJSON_AddStringToObject(claims, "iss", c->iss);
	cJSON_AddStringToObject(claims, "scope", c->scope);
	cJSON_AddStringToObject(claims, "aud", c->aud);
	cJSON_AddNumberToObject(claims, "iat", (double)c->iat);
	cJSON_AddNumberToObject(claims, "exp", (double)c->iat + JWT_LIFETIME);
	append_json_b64(out, hdr);
	buf_putc(out, '.');
	append_json_b64(out, claims);
	cJSON_Delete(hdr);
	cJSON_Delete(claims);

	int rc = -EIO;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	    EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)out->data, out->len) == 1) {
		sig = malloc(siglen);
		if (sig && EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out->data,
					  out->len) == 1)
			rc = 0;
	}
	EVP_MD_CTX_free(md);
	if (rc == 0) {
		buf_putc(out, '.');
		jwt_base64url(out, sig, siglen);
	} else {
		unsigned long e = ERR_peek_last_error();
		const char *why = e ? ERR_reason_error_string(e) : NULL;
		snprintf(err, errlen, "signing the JWT failed (%s)", why ? why : "unknown reason");
		ERR_clear_error();
		buf_reset(out);
	}
	free(sig);
	return rc;
}
