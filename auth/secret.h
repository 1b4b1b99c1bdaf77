/*
 * secret: page-backed buffers for secrets (tokens, key text) that are kept
 * out of core dumps (MADV_DONTDUMP) and zeroed before they are released.
 */
#ifndef GCSMOUNT_AUTH_SECRET_H
#define GCSMOUNT_AUTH_SECRET_H

#include <stddef.h>

struct secret {
	char *data;     /* NUL-terminated text, or NULL */
	size_t len;
	size_t cap;     /* bytes mapped */
};

#define SECRET_INIT {NULL, 0, 0}

/* Replace s's contents with a copy of text[0..len). 0 or -ENOMEM. */
int auth_secret_set(struct secret *s, const char *text, size_t len);
/* Zero and unmap. Leaves s empty and reusable. */
void auth_secret_clear(struct secret *s);
/* Zero len bytes at p (a wrapper so callers need not include OpenSSL). */
void auth_secret_wipe(void *p, size_t len);

#endif
