/*
 * hash: the string hash of the mount's tables (FNV-1a, its high bits folded
 * into the low ones so that a power-of-two table can mask them). Names that
 * differ only in their last characters, f00000 to f09999, spread evenly.
 */
#ifndef GCSMOUNT_HASH_H
#define GCSMOUNT_HASH_H

#include <stdint.h>

static inline uint64_t hash_str(uint64_t seed, const char *s)
{
	uint64_t h = 1469598103934665603ull ^ seed;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h ^ h >> 29;
}

#endif
