/*
 * fuzz_options: the command line. The input is split on NUL bytes into
 * argv[1..] (at most 16 arguments) for opts_parse; the whole input, as one
 * string, also goes to opts_parse_size and opts_parse_source.
 */
#include "fs/options.h"

#include <errno.h>

#include "fuzz_util.h"

#define MAX_ARGS 16

/* The size grammar of options.h, independently: DIGITS [kKmMgG [i] [bB]],
 * no overflow. 0 or -1. */
static int ref_parse_size(const char *s, uint64_t *out)
{
	uint64_t n = 0;
	const char *p = s;
	if (!(*p >= '0' && *p <= '9'))
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	unsigned shift = 0;
	if (*p && strchr("kK", *p)) shift = 10;
	else if (*p && strchr("mM", *p)) shift = 20;
	else if (*p && strchr("gG", *p)) shift = 30;
	if (shift) {
		p++;
		if (*p == 'i')
			p++;
		if (*p == 'b' || *p == 'B')
			p++;
	}
	if (*p || (shift && n > (UINT64_MAX >> shift)))
		return -1;
	*out = n << shift;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* argv strings: each its own exact-size allocation, so ASan sees an
	 * overread of any one of them. */
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	argv[argc++] = "gcsmount";
	size_t start = 0;
	for (size_t i = 0; i <= size && argc <= MAX_ARGS; i++) {
		if (i == size || data[i] == 0) {
			argv[argc++] = fuzz_cstr(data + start, i - start);
			start = i + 1;
		}
	}
	argv[argc] = NULL;

	struct mount_opts o;
	char err[256];
	opts_defaults(&o);
	memset(err, 0x5A, sizeof(err));
	int rc = opts_parse(argc, argv, &o, err, sizeof(err));
	FUZZ_ASSERT(strnlen(err, sizeof(err)) < sizeof(err));
	if (rc == 0) {
		FUZZ_ASSERT(err[0] == '\0');
		if (!o.show_help && !o.show_version) {
			FUZZ_ASSERT(o.bucket && o.prefix && o.mountpoint);
			size_t bl = strlen(o.bucket), pl = strlen(o.prefix);
			FUZZ_ASSERT(bl >= 3 && bl <= 222);
			FUZZ_ASSERT(!pl || (o.prefix[0] != '/' && o.prefix[pl - 1] != '/'));
			FUZZ_ASSERT(!(o.anonymous && (o.key_file || o.token_file)));
			FUZZ_ASSERT(!(o.key_file && o.token_file));
		}
		FUZZ_ASSERT(o.chunk_size && o.chunk_size % (256 * 1024) == 0 &&
			    o.chunk_size <= (1ull << 30));
		FUZZ_ASSERT(o.write_buffer && o.read_ahead);
		FUZZ_ASSERT(o.file_mode <= 07777 && o.dir_mode <= 07777);
		FUZZ_ASSERT(!o.endpoint || !strncmp(o.endpoint, "http://", 7) ||
			    !strncmp(o.endpoint, "https://", 8));
	} else {
		FUZZ_ASSERT(rc == -EINVAL);
		FUZZ_ASSERT(err[0] != '\0');
	}
	opts_free(&o);
	for (int i = 1; i < argc; i++)
		free(argv[i]);

	char *s = fuzz_cstr(data, size);
	uint64_t v = 12345;
	rc = opts_parse_size(s, &v);
	uint64_t want;
	int ref = ref_parse_size(s, &want);
	if (rc == 0) {
		/* strtoull's leniency (leading blanks, '+') is tolerated, but what
		 * follows must be digits, and the value what the grammar says. */
		const char *p = s;
		while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
			p++;
		if (*p == '+')
			p++;
		FUZZ_ASSERT(*p >= '0' && *p <= '9');
		FUZZ_ASSERT(ref_parse_size(p, &want) == 0 && v == want);
	} else {
		FUZZ_ASSERT(rc == -EINVAL && v == 12345);
		FUZZ_ASSERT(ref != 0);  /* nothing the grammar allows is refused */
	}

	char *bucket = NULL, *prefix = NULL;
	memset(err, 0x5A, sizeof(err));
	rc = opts_parse_source(s, &bucket, &prefix, err, sizeof(err));
	if (rc == 0) {
		size_t bl = strlen(bucket), pl = strlen(prefix);
		FUZZ_ASSERT(bl >= 3 && bl <= 222);
		for (size_t i = 0; i < bl; i++)
			FUZZ_ASSERT(strchr("abcdefghijklmnopqrstuvwxyz0123456789-_.", bucket[i]));
		FUZZ_ASSERT(!pl || (prefix[0] != '/' && prefix[pl - 1] != '/'));
		FUZZ_ASSERT(strstr(prefix, "//") == NULL);
	} else {
		FUZZ_ASSERT(rc == -EINVAL && !bucket && !prefix);
		FUZZ_ASSERT(strnlen(err, sizeof(err)) < sizeof(err) && err[0]);
	}
	free(bucket);
	free(prefix);
	free(s);
	return 0;
}
