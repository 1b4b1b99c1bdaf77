/*
 * fuzz_util: what every fuzz target shares. FUZZ_ASSERT aborts with the
 * broken invariant named, so libFuzzer reports it as a crash and saves the
 * input like any sanitizer finding.
 */
#ifndef GCSMOUNT_FUZZ_UTIL_H
#define GCSMOUNT_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond)                                                          \
	do {                                                                       \
		if (!(cond)) {                                                     \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, \
				__LINE__, #cond);                                  \
			abort();                                                   \
		}                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * libFuzzer's data is a heap block of exactly size bytes, so a (ptr, len)
 * parser given it directly has any read past len flagged by ASan.
 */

/* A NUL-terminated copy of the input (embedded NULs end the string early,
 * as they would in any C string the program receives). Caller frees. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
