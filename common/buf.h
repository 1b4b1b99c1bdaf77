/*
 * buf: one growable byte buffer used everywhere instead of ad-hoc
 * malloc/realloc/snprintf dances (in the spirit of git's strbuf).
 *
 * A buf is always NUL-terminated when data != NULL, so a buf holding text
 * can be handed to string functions directly. The buf owns data; buf_free()
 * releases it and leaves an empty buf that may be reused. buf_detach() hands
 * ownership of the bytes to the caller.
 *
 * Allocation failure is fatal (the process aborts with a log line): every
 * buffer here is bounded by the caller, and a mount that cannot allocate a
 * few KiB cannot do anything useful.
 */
#ifndef GCSMOUNT_BUF_H
#define GCSMOUNT_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_grow(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_reset(struct buf *b);          /* len = 0, keeps the allocation */
void buf_free(struct buf *b);
char *buf_detach(struct buf *b);        /* caller frees; never NULL */
/* Overwrite the bytes with zeros before freeing (for secrets). */
void buf_free_secret(struct buf *b);

/* Allocation helpers that abort on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
