/*
 * errmap: the one table from HTTP status to errno, and the small parsers of
 * what a server sends back besides objects (error bodies, Range headers,
 * timestamps) plus the rules for names GCS can hold.
 */
#include "gcs/gcs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
	long status;
	int err;
} status_table[] = {
	{400, EINVAL},       /* bad request: our request or name was refused */
	{401, EACCES},       /* credentials refused (after one refresh) */
	{403, EACCES},       /* no permission */
	{404, ENOENT},
	{409, EEXIST},
	{412, ESTALE},       /* generation precondition: someone else changed it */
	{413, EFBIG},
	{416, EINVAL},
	{429, EAGAIN},       /* only after retries ran out */
};

int gcs_errno_for_status(long status)
{
	for (size_t i = 0; i < sizeof(status_table) / sizeof(status_table[0]); i++)
		if (status_table[i].status == status)
			return -status_table[i].err;
	return -EIO;
}

void gcs_error_parse(const char *body, size_t len, char *msg, size_t msglen)
{
	msg[0] = '\0';
	if (!body || !len)
		return;
	cJSON *j = cJSON_ParseWithLength(body, len);
	const cJSON *m = NULL;
	if (j) {
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
		if (cJSON_IsObject(err))
			m = cJSON_GetObjectItemCaseSensitive(err, "message");
		else if (cJSON_IsString(err)) /* OAuth style */
			m = cJSON_GetObjectItemCaseSensitive(j, "error_description");
		if (!cJSON_IsString(m) && cJSON_IsString(err))
			m = err;
	}
	if (cJSON_IsString(m)) {
		/* One line, printable: a server's text goes into our one-line errors. */
		size_t n = 0;
		for (const char *p = m->valuestring; *p && n + 1 < msglen; p++)
			msg[n++] = (unsigned char)*p < 32 || *p == 127 ? ' ' : *p;
		msg[n] = '\0';
	} else {
		/* Not JSON: the first line of the body, printable bytes only. */
		size_t n = 0;
		for (size_t i = 0; i < len && n + 1 < msglen && n < 160; i++) {
			unsigned char ch = (unsigned char)body[i];
			if (ch == '\n' || ch == '\r')
				break;
			msg[n++] = ch >= 32 && ch < 127 ? (char)ch : '?';
		}
		msg[n] = '\0';
	}
	cJSON_Delete(j);
}

int gcs_parse_range(const char *range, uint64_t *persisted)
{
	*persisted = 0;
	if (!range || !range[0])
		return 0;
	/* Exactly "bytes=0-N", N decimal digits: no signs, blanks or junk. */
	if (strncmp(range, "bytes=0-", 8) != 0)
		return -EINVAL;
	const char *p = range + 8;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long b = strtoull(p, &end, 10);
	if (errno || *end || b == ~0ull)
		return -EINVAL;
	*persisted = b + 1;
	return 0;
}

int gcs_name_check(const char *name, size_t len)
{
	if (len == 0)
		return -EINVAL;
	if (len > 1024)
		return -ENAMETOOLONG;
	const unsigned char *s = (const unsigned char *)name;
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;
		if (c == '\r' || c == '\n' || c == 0)
			return -EINVAL;
		if (c < 0x80) { i++; continue; }
		if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
		else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
		else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
		else return -EINVAL;
		if (i + n >= len)
			return -EINVAL;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return -EINVAL;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		/* Overlong forms, surrogates and values past Unicode are not UTF-8. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return -EINVAL;
		i += n + 1;
	}
	return 0;
}

/* n ASCII digits at p as a number, or -1. */
static int fixed_digits(const char *p, int n)
{
	int v = 0;
	for (int k = 0; k < n; k++) {
		if (p[k] < '0' || p[k] > '9')
			return -1;
		v = v * 10 + (p[k] - '0');
	}
	return v;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static long days_since_epoch(long y, int m, int d)
{
	y -= m <= 2;                               /* years start in March */
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;                  /* [0, 399] */
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Parsed by hand: listings carry one per object, and sscanf with timegm
 * cost more than the rest of an entry together. */
int gcs_parse_rfc3339(const char *s, struct timespec *ts)
{
	if (!s)
		return -EINVAL;
	int year = fixed_digits(s, 4);
	if (year < 0 || s[4] != '-')
		return -EINVAL;
	int mon = fixed_digits(s + 5, 2);
	if (mon < 0 || s[7] != '-')
		return -EINVAL;
	int mday = fixed_digits(s + 8, 2);
	if (mday < 0 || (s[10] != 'T' && s[10] != 't'))
		return -EINVAL;
	int hour = fixed_digits(s + 11, 2);
	if (hour < 0 || s[13] != ':')
		return -EINVAL;
	int min = fixed_digits(s + 14, 2);
	if (min < 0 || s[16] != ':')
		return -EINVAL;
	int sec = fixed_digits(s + 17, 2);
	if (sec < 0 || mon < 1 || mon > 12 || mday < 1 || mday > 31 || hour > 23 || min > 59 ||
	    sec > 60)
		return -EINVAL;
	const char *p = s + 19;
	long nsec = 0;
	if (*p == '.') {
		p++;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (digits < 9) {
				nsec = nsec * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		if (digits == 0)
			return -EINVAL;
		while (digits++ < 9)
			nsec *= 10;
	}
	long offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh = fixed_digits(p + 1, 2);
		int om = oh < 0 || p[3] != ':' ? -1 : fixed_digits(p + 4, 2);
		if (om < 0 || oh > 23 || om > 59)
			return -EINVAL;
		offset = (oh * 3600L + om * 60L) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	long days = days_since_epoch(year, mon, mday);
	ts->tv_sec = (time_t)(days * 86400L + hour * 3600L + min * 60L + sec - offset);
	ts->tv_nsec = nsec;
	return 0;
}
