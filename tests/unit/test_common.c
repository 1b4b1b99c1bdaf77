/* Unit tests of common/: buffers, URL encoding, CRC32C. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/http.h"

static void test_buf(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	buf_puts(&b, "abc");
	buf_printf(&b, "-%d-%s", 42, "x");
	buf_putc(&b, '!');
	assert_string_equal(b.data, "abc-42-x!");
	assert_int_equal(b.len, 9);
	for (int i = 0; i < 10000; i++)
		buf_putc(&b, 'z');
	assert_int_equal(b.len, 10009);
	assert_int_equal(b.data[b.len], '\0');
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	char *s = buf_detach(&b);
	assert_string_equal(s, "");
	free(s);
	buf_free(&b);
	struct buf e = BUF_INIT;
	s = buf_detach(&e);
	assert_string_equal(s, "");
	free(s);
}

static void test_urlencode(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	const char *name = "run 1/a+b%c~d_e.f-g/ü#?&=";
	http_urlencode(&b, name, strlen(name));
	assert_string_equal(b.data, "run%201%2Fa%2Bb%25c~d_e.f-g%2F%C3%BC%23%3F%26%3D");
	struct buf d = BUF_INIT;
	assert_int_equal(http_urldecode(&d, b.data, b.len), 0);
	assert_string_equal(d.data, name);
	buf_reset(&d);
	assert_int_equal(http_urldecode(&d, "%4", 2), -EINVAL);
	buf_reset(&d);
	assert_int_equal(http_urldecode(&d, "%zz", 3), -EINVAL);
	buf_reset(&d);
	assert_int_equal(http_urldecode(&d, "abc%", 4), -EINVAL);
	buf_free(&b);
	buf_free(&d);
}

/* Bit at a time, straight from the definition: what the fast paths must agree with. */
static uint32_t crc32c_bitwise(const unsigned char *p, size_t len)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < len; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

/* Long buffers go three lanes at a time: every length around the lanes' block
 * (3 x 8 KiB), at every alignment, in one call and split. */
static void test_crc32c_long(void **state)
{
	(void)state;
	size_t max = 3 * 3 * 8192 + 64;
	unsigned char *buf = malloc(max + 8);
	assert_non_null(buf);
	uint32_t x = 12345;
	for (size_t i = 0; i < max + 8; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
	const size_t lens[] = {3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, 3 * 8192 + 7, 6 * 8192,
			       6 * 8192 + 5, 9 * 8192 + 63, 70001};
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
		for (size_t off = 0; off < 8; off++) {
			uint32_t want = crc32c_bitwise(buf + off, lens[l]);
			assert_int_equal(crc32c_update(0, buf + off, lens[l]), want);
			size_t cut = lens[l] / 3 + off;
			assert_int_equal(crc32c_update(crc32c_update(0, buf + off, cut), buf + off + cut,
						       lens[l] - cut), want);
		}
	free(buf);
}

static void test_crc32c(void **state)
{
	(void)state;
	/* RFC 3720 B.4 and the classic check value. */
	assert_int_equal(crc32c_update(0, "123456789", 9), 0xE3069283u);
	unsigned char zeros[32] = {0}, ones[32];
	memset(ones, 0xff, sizeof(ones));
	assert_int_equal(crc32c_update(0, zeros, 32), 0x8A9136AAu);
	assert_int_equal(crc32c_update(0, ones, 32), 0x62A8AB43u);
	/* Incremental equals one-shot, at every split and alignment. */
	char data[1000];
	for (int i = 0; i < 1000; i++)
		data[i] = (char)(i * 7 + 3);
	uint32_t whole = crc32c_update(0, data, sizeof(data));
	for (size_t cut = 0; cut <= sizeof(data); cut += 37)
		assert_int_equal(crc32c_update(crc32c_update(0, data, cut), data + cut,
					       sizeof(data) - cut), whole);
	char b64[9];
	crc32c_base64(0xE3069283u, b64);
	assert_string_equal(b64, "4waSgw==");
	uint32_t back;
	assert_int_equal(crc32c_from_base64(b64, &back), 0);
	assert_int_equal(back, 0xE3069283u);
	assert_int_equal(crc32c_from_base64("AAAA", &back), -EINVAL);
	assert_int_equal(crc32c_from_base64("!!!!!!==", &back), -EINVAL);
	crc32c_base64(0, b64);
	assert_string_equal(b64, "AAAAAA==");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_urlencode),
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_crc32c_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
