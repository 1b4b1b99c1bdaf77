/*
 * crc32c: hardware (SSE4.2) or slice-by-8 CRC32C. See crc32c.h.
 */
#include "crc32c.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#define POLY 0x82F63B78u /* reflected Castagnoli polynomial */

/* Long buffers are summed in three lanes of LANE bytes at once: the crc32
 * instruction takes three cycles to give its result and can start one a
 * cycle, so one chain of them runs at a third of its speed. The lanes are
 * joined with lane_shift[], which moves a sum past LANE zero bytes. */
#define LANE 8192

static uint32_t table[8][256];
#if defined(__x86_64__)
static uint32_t lane_shift[4][256];
#endif
static int use_hw;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 1; k < 8; k++)
			table[k][n] = (table[k - 1][n] >> 8) ^ table[0][table[k - 1][n] & 0xff];
#if defined(__x86_64__)
	__builtin_cpu_init();
	use_hw = __builtin_cpu_supports("sse4.2");
	if (!use_hw)
		return;
	/* Only the hardware path has lanes. Past zero bytes a sum changes
	 * linearly: find where each of its 32 bits goes, then tabulate each
	 * byte of it. */
	uint32_t image[32];
	for (int bit = 0; bit < 32; bit++) {
		uint32_t c = 1u << bit;
		for (int k = 0; k < LANE; k++)
			c = (c >> 8) ^ table[0][c & 0xff];
		image[bit] = c;
	}
	for (int k = 0; k < 4; k++)
		for (uint32_t n = 0; n < 256; n++) {
			uint32_t c = 0;
			for (int bit = 0; bit < 8; bit++)
				if (n >> bit & 1)
					c ^= image[8 * k + bit];
			lane_shift[k][n] = c;
		}
#endif
}

static uint32_t crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		w ^= crc;
		crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
		      table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
		      table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
		      table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
/* The sum of X followed by LANE zero bytes, from the sum of X. */
static uint32_t shift_past_lane(uint32_t c)
{
	return lane_shift[0][c & 0xff] ^ lane_shift[1][(c >> 8) & 0xff] ^
	       lane_shift[2][(c >> 16) & 0xff] ^ lane_shift[3][c >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = crc;
	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 3 * LANE) {
		uint64_t a = c, b = 0, d = 0;
		for (size_t i = 0; i < LANE; i += 8) {
			uint64_t wa, wb, wd;
			memcpy(&wa, p + i, 8);
			memcpy(&wb, p + LANE + i, 8);
			memcpy(&wd, p + 2 * LANE + i, 8);
			a = __builtin_ia32_crc32di(a, wa);
			b = __builtin_ia32_crc32di(b, wb);
			d = __builtin_ia32_crc32di(d, wd);
		}
		c = shift_past_lane((uint32_t)a) ^ b;
		c = shift_past_lane((uint32_t)c) ^ d;
		p += 3 * LANE;
		len -= 3 * LANE;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

uint32_t crc32c_update(uint32_t crc, const void *data, size_t len)
{
	pthread_once(&once, crc32c_init);
	crc = ~crc;
#if defined(__x86_64__)
	if (use_hw)
		return ~crc_hw(crc, data, len);
#endif
	return ~crc_sw(crc, data, len);
}

int crc32c_hw(void)
{
	pthread_once(&once, crc32c_init);
	return use_hw;
}

void crc32c_base64(uint32_t crc, char out[9])
{
	unsigned char be[4] = {crc >> 24, (crc >> 16) & 0xff, (crc >> 8) & 0xff, crc & 0xff};
	EVP_EncodeBlock((unsigned char *)out, be, 4);
}

int crc32c_from_base64(const char *s, uint32_t *crc)
{
	unsigned char raw[8];
	if (strlen(s) != 8)
		return -EINVAL;
	if (EVP_DecodeBlock(raw, (const unsigned char *)s, 8) != 6) /* 4 bytes + 2 pad */
		return -EINVAL;
	*crc = (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3];
	return 0;
}
