/*
 * jwt: base64url (RFC 4648 section 5, no padding) and the RS256-signed JWT
 * a service account exchanges for an access token (RFC 7523; Google's
 * "OAuth 2.0 for server to server applications").
 */
#ifndef GCSMOUNT_AUTH_JWT_H
#define GCSMOUNT_AUTH_JWT_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/buf.h"

#define JWT_LIFETIME 3600

/* Append the base64url encoding of data (no '=' padding) to out. */
void jwt_base64url(struct buf *out, const void *data, size_t len);

/* Append the bytes encoded by s[0..len) (padding optional) to out.
 * Returns 0 or -EINVAL on a character outside the alphabet or a bad length. */
int jwt_base64url_decode(struct buf *out, const char *s, size_t len);

struct jwt_claims {
	const char *kid;     /* private_key_id, or NULL to leave it out */
	const char *iss;     /* client_email */
	const char *scope;
	const char *aud;     /* token_uri */
	time_t iat;          /* exp = iat + JWT_LIFETIME */
};

/*
 * Write header.claims.signature into out (replacing its contents), signed
 * with RSASSA-PKCS1-v1_5 SHA-256 by pkey. Returns 0 or -EIO with a line in
 * err. The result is a bearer credential for an hour: wipe it after use.
 */
int jwt_build(struct buf *out, EVP_PKEY *pkey, const struct jwt_claims *c,
	      char *err, size_t errlen);

#endif
