/*
 * fuzz_headers: the parsers of header values and timestamps a server
 * sends: gcs_parse_range (Range of a resumable upload status),
 * gcs_parse_rfc3339 (updated, mtime metadata), crc32c_from_base64
 * (crc32c field, x-goog-hash). The input, up to its first NUL, is given to
 * each as one string.
 */
#include "common/crc32c.h"
#include "gcs/gcs.h"

#include <errno.h>
#include <inttypes.h>
#include <time.h>

#include "fuzz_util.h"

static void range(const char *s)
{
	uint64_t n = 12345;
	int rc = gcs_parse_range(s, &n);
	if (rc != 0) {
		FUZZ_ASSERT(rc == -EINVAL);
		return;
	}
	if (!s[0]) {
		FUZZ_ASSERT(n == 0);
		return;
	}
	/* The number after the last '-' is n-1: sscanf's leniency (blanks, a
	 * '+') is tolerated, but not a negative number wrapping around. */
	FUZZ_ASSERT(n >= 1);
	const char *p = strrchr(s, '-');
	FUZZ_ASSERT(p != NULL);
	for (p++; *p == ' ' || (*p >= '\t' && *p <= '\r') || *p == '+'; p++)
		;
	uint64_t last = 0;
	FUZZ_ASSERT(*p >= '0' && *p <= '9');
	for (; *p; p++) {
		FUZZ_ASSERT(*p >= '0' && *p <= '9');
		FUZZ_ASSERT(last <= (UINT64_MAX - (uint64_t)(*p - '0')) / 10);
		last = last * 10 + (uint64_t)(*p - '0');
	}
	FUZZ_ASSERT(last == n - 1);
	/* "bytes=0-(n-1)" means n bytes persisted, and must say so again. */
	char again[64];
	snprintf(again, sizeof(again), "bytes=0-%" PRIu64, n - 1);
	uint64_t m = 0;
	FUZZ_ASSERT(gcs_parse_range(again, &m) == 0);
	FUZZ_ASSERT(m == n);
}

static void rfc3339(const char *s)
{
	struct timespec ts = {-7, -7};
	int rc = gcs_parse_rfc3339(s, &ts);
	if (rc != 0) {
		FUZZ_ASSERT(rc == -EINVAL);
		return;
	}
	FUZZ_ASSERT(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
	/* Printed back in UTC with all nine digits, it parses to the same time. */
	struct tm tm;
	if (!gmtime_r(&ts.tv_sec, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return;
	char again[64];
	snprintf(again, sizeof(again), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
	struct timespec back = {0, 0};
	FUZZ_ASSERT(gcs_parse_rfc3339(again, &back) == 0);
	FUZZ_ASSERT(back.tv_sec == ts.tv_sec && back.tv_nsec == ts.tv_nsec);
}

static void crc(const char *s)
{
	uint32_t v = 0;
	int rc = crc32c_from_base64(s, &v);
	if (rc != 0) {
		FUZZ_ASSERT(rc == -EINVAL);
		return;
	}
	FUZZ_ASSERT(strlen(s) == 8);
	char enc[9];
	crc32c_base64(v, enc);
	FUZZ_ASSERT(strlen(enc) == 8 && enc[6] == '=' && enc[7] == '=');
	uint32_t w = ~v;
	FUZZ_ASSERT(crc32c_from_base64(enc, &w) == 0 && w == v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	range(s);
	rfc3339(s);
	crc(s);
	free(s);
	return 0;
}
