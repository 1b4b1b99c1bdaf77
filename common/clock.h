/*
 * clock: CLOCK_MONOTONIC in nanoseconds, the one reading that deadlines and
 * upload ages are kept in. Async-signal-safe (clock_gettime is).
 */
#ifndef GCSMOUNT_CLOCK_H
#define GCSMOUNT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#endif
