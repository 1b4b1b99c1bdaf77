/*
 * fuzz_error_body: gcs_error_parse on the body of a non-2xx answer (GCS
 * JSON errors, OAuth errors, HTML from a proxy, anything). The text lands
 * in one log line, so it must be one line and fit the buffer it was given.
 */
#include "gcs/gcs.h"

#include "fuzz_util.h"

#define CANARY 0x5A

static void check(const uint8_t *data, size_t size, size_t msglen)
{
	char msg[256 + 16];
	memset(msg, CANARY, sizeof(msg));
	gcs_error_parse((const char *)data, size, msg, msglen);
	size_t n = strnlen(msg, msglen);
	FUZZ_ASSERT(n < msglen);                      /* NUL-terminated inside msglen */
	for (size_t i = msglen; i < sizeof(msg); i++)
		FUZZ_ASSERT((unsigned char)msg[i] == CANARY); /* nothing written past it */
	FUZZ_ASSERT(memchr(msg, '\n', n) == NULL);    /* one line */
	FUZZ_ASSERT(memchr(msg, '\r', n) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, 200);  /* what gcs/client.c passes */
	check(data, size, 1);
	check(data, size, 17);
	check(data, size, 256);
	return 0;
}
