/*
 * fuzz_key_json: key_parse, the credentials document parser (service
 * account key with its PEM private key through OpenSSL, or gcloud's
 * authorized_user file). The input is the file's content, handed over as
 * (ptr, len) exactly as key_parse's contract says.
 */
#include "auth/key.h"

#include <errno.h>
#include <openssl/evp.h>

#include "fuzz_util.h"

static int all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct key k;
	char err[512];
	memset(err, 0, sizeof(err));
	int rc = key_parse((const char *)data, size, "fuzz", &k, err, sizeof(err));
	if (rc == 0) {
		FUZZ_ASSERT(k.token_uri != NULL && strncmp(k.token_uri, "http", 4) == 0);
		if (k.type == KEY_SERVICE_ACCOUNT) {
			FUZZ_ASSERT(k.pkey != NULL);
			FUZZ_ASSERT(EVP_PKEY_base_id(k.pkey) == EVP_PKEY_RSA);
			FUZZ_ASSERT(k.client_email != NULL && k.client_email[0]);
			FUZZ_ASSERT(!k.private_key_id || k.private_key_id[0]);
		} else {
			FUZZ_ASSERT(k.type == KEY_AUTHORIZED_USER);
			FUZZ_ASSERT(k.pkey == NULL);
			FUZZ_ASSERT(k.client_id != NULL && k.client_id[0]);
			FUZZ_ASSERT(k.client_secret.data && k.client_secret.len);
			FUZZ_ASSERT(k.refresh_token.data && k.refresh_token.len);
		}
		char desc[256];
		key_describe(&k, desc, sizeof(desc));
		FUZZ_ASSERT(strnlen(desc, sizeof(desc)) < sizeof(desc));
	} else {
		FUZZ_ASSERT(rc == -EINVAL || rc == -ENOTSUP || rc == -ENOMEM);
		/* One line naming the cause, and k left empty. */
		size_t n = strnlen(err, sizeof(err));
		FUZZ_ASSERT(n > 0 && n < sizeof(err));
		FUZZ_ASSERT(memchr(err, '\n', n) == NULL);
		FUZZ_ASSERT(all_zero(&k, sizeof(k)));
	}
	key_free(&k);
	FUZZ_ASSERT(all_zero(&k, sizeof(k)));
	return 0;
}
