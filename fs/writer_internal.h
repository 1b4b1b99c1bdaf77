/*
 * Inside the writer (writer.c, publish.c, uploader.c): helpers that assume
 * w->lock is held unless said otherwise.
 */
#ifndef GCSMOUNT_WRITER_INTERNAL_H
#define GCSMOUNT_WRITER_INTERNAL_H

#include "fs/writer.h"

void writer_set_size(struct writer *w, uint64_t size);
/* Tail bytes written and not confirmed by the server. */
uint64_t writer_unsent(struct writer *w);
/* Count bytes in (or out of) the global write budget, for this writer. */
void writer_pending_add(struct writer *w, uint64_t n);
void writer_pending_sub(struct writer *w, uint64_t n);
/* Write the journal. */
void writer_save(struct writer *w);
int writer_go_staged(struct writer *w, struct gcs_error *e);
/* Forget the tail's session (cancelling it on the server when asked). */
void writer_drop_session(struct writer *w, int cancel);

/* Fill e for a failure that is not the server's. */
void gcs_error_set_local(struct gcs_error *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
