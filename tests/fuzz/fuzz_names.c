/*
 * fuzz_names: object names. http_urlencode/http_urldecode must round-trip
 * any bytes; gcs_name_check must accept exactly the names GCS can hold
 * (1..1024 bytes of valid UTF-8 without CR, LF or NUL), checked against an
 * independent UTF-8 validator; http_urldecode must survive raw input.
 */
#include "common/buf.h"
#include "common/http.h"
#include "gcs/gcs.h"

#include <errno.h>

#include "fuzz_util.h"

/* Well-formed UTF-8 per Unicode 15, table 3-7. */
static int utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint8_t lo = 0x80, hi = 0xBF;
		if (c <= 0x7F) { i++; continue; }
		else if (c >= 0xC2 && c <= 0xDF) n = 1;
		else if (c == 0xE0) { n = 2; lo = 0xA0; }
		else if (c >= 0xE1 && c <= 0xEC) n = 2;
		else if (c == 0xED) { n = 2; hi = 0x9F; }
		else if (c >= 0xEE && c <= 0xEF) n = 2;
		else if (c == 0xF0) { n = 3; lo = 0x90; }
		else if (c >= 0xF1 && c <= 0xF3) n = 3;
		else if (c == 0xF4) { n = 3; hi = 0x8F; }
		else return 0;
		if (len - i - 1 < n)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xBF)
				return 0;
		i += n + 1;
	}
	return 1;
}

static int unreserved(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;

	/* Encode: only unreserved bytes and %XX (upper-case hex) come out. */
	struct buf enc = BUF_INIT, dec = BUF_INIT;
	http_urlencode(&enc, in, size);
	size_t want = 0;
	for (size_t i = 0; i < size; i++)
		want += unreserved(data[i]) ? 1 : 3;
	FUZZ_ASSERT(enc.len == want);
	FUZZ_ASSERT(enc.data && enc.data[enc.len] == '\0');
	for (size_t i = 0; i < enc.len; i++) {
		uint8_t c = (uint8_t)enc.data[i];
		if (c == '%') {
			FUZZ_ASSERT(i + 2 < enc.len);
			FUZZ_ASSERT(strchr("0123456789ABCDEF", enc.data[i + 1]) && enc.data[i + 1]);
			FUZZ_ASSERT(strchr("0123456789ABCDEF", enc.data[i + 2]) && enc.data[i + 2]);
			i += 2;
		} else {
			FUZZ_ASSERT(unreserved(c));
		}
	}
	/* ...and decode gives back exactly the input. */
	FUZZ_ASSERT(http_urldecode(&dec, enc.data, enc.len) == 0);
	FUZZ_ASSERT(dec.len == size);
	FUZZ_ASSERT(size == 0 || memcmp(dec.data, data, size) == 0);
	buf_free(&enc);
	buf_free(&dec);

	/* Decode of raw input: no crash; on success the output is no longer. */
	int rc = http_urldecode(&dec, in, size);
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL);
	if (rc == 0)
		FUZZ_ASSERT(dec.len <= size);
	buf_free(&dec);

	/* Name rules. */
	rc = gcs_name_check(in, size);
	int ok = size >= 1 && size <= 1024 && utf8_valid(data, size) &&
		 !memchr(data, '\r', size) && !memchr(data, '\n', size) && !memchr(data, 0, size);
	if (rc == 0) {
		FUZZ_ASSERT(size >= 1 && size <= 1024);
		FUZZ_ASSERT(utf8_valid(data, size));
		FUZZ_ASSERT(!memchr(data, '\r', size) && !memchr(data, '\n', size));
		FUZZ_ASSERT(!memchr(data, 0, size));
	} else if (size > 1024) {
		FUZZ_ASSERT(rc == -ENAMETOOLONG);
	} else {
		FUZZ_ASSERT(rc == -EINVAL);
	}
	FUZZ_ASSERT((rc == 0) == ok);  /* and nothing valid is refused */
	return 0;
}
