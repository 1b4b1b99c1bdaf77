/*
 * hostport: the ADDRESS:PORT form of -o metrics=, parsed without a lookup or
 * a socket, so the option parser can refuse a malformed one before a mount.
 */
#include "common/hostport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hostport_split(const char *s, char *host, size_t hostlen, char *port, size_t portlen,
		   char *err, size_t errlen)
{
	const char *colon;
	const char *h = s;
	size_t hl;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':') {
			snprintf(err, errlen, "metrics=%s: expected [ADDRESS]:PORT", s);
			return -EINVAL;
		}
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s))) {
			snprintf(err, errlen, "metrics=%s: expected ADDRESS:PORT (an IPv6 address "
				 "in brackets)", s);
			return -EINVAL;
		}
		hl = (size_t)(colon - s);
	}
	const char *p = colon + 1;
	char *end;
	errno = 0;
	long n = strtol(p, &end, 10);
	if (!*p || *end || errno || n < 1 || n > 65535 || p[0] == '+' || p[0] == '-') {
		snprintf(err, errlen, "metrics=%s: the port must be a number from 1 to 65535", s);
		return -EINVAL;
	}
	if (hl >= hostlen) {
		snprintf(err, errlen, "metrics=%s: address too long", s);
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, portlen, "%ld", n);
	return 0;
}
