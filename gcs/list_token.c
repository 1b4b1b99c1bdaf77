/*
 * list_token: the nextPageToken of an objects.list answer, found without
 * parsing its items, so the next page can be asked for while this one is
 * parsed. It answers what gcs_list_parse would: the first top-level
 * "nextPageToken" key (compared as cJSON compares keys, after decoding
 * escapes), its value if that is a non-empty string, else none.
 */
#include "gcs/gcs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

struct scan {
	const char *p, *end;
};

/* cJSON takes every byte up to 32 for white space. */
static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (unsigned char)*s->p <= 32)
		s->p++;
}

/* At a '"': past the closing quote. *escaped tells whether it held a backslash. */
static int skip_string(struct scan *s, int *escaped)
{
	*escaped = 0;
	for (s->p++; s->p < s->end; s->p++) {
		if (*s->p == '\\') {
			*escaped = 1;
			s->p++;
		} else if (*s->p == '"') {
			s->p++;
			return 0;
		}
	}
	return -EINVAL;
}

/* Past one value: a string, an object or array (brackets counted), or a bare word. */
static int skip_value(struct scan *s)
{
	int escaped;
	if (s->p >= s->end)
		return -EINVAL;
	if (*s->p == '"')
		return skip_string(s, &escaped);
	if (*s->p != '{' && *s->p != '[') {
		const char *start = s->p;
		while (s->p < s->end && !strchr(",}] \t\r\n", *s->p) && *s->p)
			s->p++;
		return s->p > start ? 0 : -EINVAL;
	}
	size_t depth = 0;
	while (s->p < s->end) {
		char c = *s->p;
		if (c == '"') {
			if (skip_string(s, &escaped) < 0)
				return -EINVAL;
			continue;
		}
		s->p++;
		if (c == '{' || c == '[')
			depth++;
		else if ((c == '}' || c == ']') && --depth == 0)
			return 0;
	}
	return -EINVAL;
}

/* The JSON string literal [from, to) decoded; NULL when it is no valid string. */
static char *decode_string(const char *from, const char *to)
{
	cJSON *j = cJSON_ParseWithLength(from, (size_t)(to - from));
	char *out = cJSON_IsString(j) ? xstrdup(j->valuestring) : NULL;
	cJSON_Delete(j);
	return out;
}

static int key_is_token(const char *from, const char *to, int escaped)
{
	static const char want[] = "\"nextPageToken\"";
	if ((size_t)(to - from) == sizeof(want) - 1 && memcmp(from, want, sizeof(want) - 1) == 0)
		return 1;
	/* cJSON compares keys decoded, as C strings: up to a NUL byte. */
	if (!escaped && !memchr(from, '\0', (size_t)(to - from)))
		return 0;
	char *key = decode_string(from, to);
	int yes = key && strcmp(key, "nextPageToken") == 0;
	free(key);
	return yes;
}

int gcs_list_token(const char *json, size_t len, char **token)
{
	*token = NULL;
	struct scan s = {json, json + len};
	if (len >= 3 && memcmp(json, "\xEF\xBB\xBF", 3) == 0)
		s.p += 3; /* a UTF-8 byte order mark, as cJSON skips it */
	skip_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return -EINVAL;
	s.p++;
	skip_ws(&s);
	if (s.p < s.end && *s.p == '}')
		return 0;
	for (;;) {
		skip_ws(&s);
		if (s.p >= s.end || *s.p != '"')
			return -EINVAL;
		const char *key = s.p;
		int escaped;
		if (skip_string(&s, &escaped) < 0)
			return -EINVAL;
		int match = key_is_token(key, s.p, escaped);
		skip_ws(&s);
		if (s.p >= s.end || *s.p != ':')
			return -EINVAL;
		s.p++;
		skip_ws(&s);
		const char *value = s.p;
		if (skip_value(&s) < 0)
			return -EINVAL;
		if (match) {
			char *t = *value == '"' ? decode_string(value, s.p) : NULL;
			if (t && !t[0]) {
				free(t);
				t = NULL;
			}
			*token = t;
			return 0;
		}
		skip_ws(&s);
		if (s.p < s.end && *s.p == ',') {
			s.p++;
			continue;
		}
		return s.p < s.end && *s.p == '}' ? 0 : -EINVAL;
	}
}
