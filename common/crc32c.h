/*
 * crc32c: the Castagnoli CRC that GCS keeps for every object.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
 * run time), else a slice-by-8 table. crc32c_update(0, ...) starts a new sum;
 * feed the previous result back to continue it.
 */
#ifndef GCSMOUNT_CRC32C_H
#define GCSMOUNT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);
/* The form GCS uses in metadata and x-goog-hash: base64 of 4 big-endian bytes. */
void crc32c_base64(uint32_t crc, char out[9]);
/* Parse that form back; returns 0 or -EINVAL. */
int crc32c_from_base64(const char *s, uint32_t *crc);
/* Whether the hardware path is in use (for the log). */
int crc32c_hw(void);

#endif
