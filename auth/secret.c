/*
 * secret: page-backed secret buffers. Each secret gets its own anonymous
 * mapping so madvise(MADV_DONTDUMP) can exclude it from core dumps without
 * touching the heap pages around it; on release the bytes are zeroed with
 * OPENSSL_cleanse (which the compiler may not elide) before munmap.
 */
#include "auth/secret.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

void auth_secret_wipe(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}

void auth_secret_clear(struct secret *s)
{
	if (s->data) {
		OPENSSL_cleanse(s->data, s->cap);
		munmap(s->data, s->cap);
	}
	s->data = NULL;
	s->len = s->cap = 0;
}

int auth_secret_set(struct secret *s, const char *text, size_t len)
{
	if (s->data && len + 1 <= s->cap) {
		OPENSSL_cleanse(s->data, s->cap);
		memcpy(s->data, text, len);
		s->data[len] = '\0';
		s->len = len;
		return 0;
	}
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;
	size_t cap = (len + 1 + page - 1) / page * page;
	char *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
#ifdef MADV_DONTDUMP
	(void)madvise(p, cap, MADV_DONTDUMP); /* best effort */
#endif
	memcpy(p, text, len);
	p[len] = '\0';
	auth_secret_clear(s);
	s->data = p;
	s->len = len;
	s->cap = cap;
	return 0;
}
