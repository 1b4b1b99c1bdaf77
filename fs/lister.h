/*
 * lister: the pages of one directory listing (objects.list, delimiter '/'),
 * fetched in order on a thread of their own, up to LISTER_AHEAD pages ahead
 * of the reader. Each page's continuation token is picked out of its answer
 * (gcs_list_token) so the next request goes out at once; parsing is left to
 * the reader, so it overlaps the server's work on the pages after.
 */
#ifndef GCSMOUNT_LISTER_H
#define GCSMOUNT_LISTER_H

#include "common/buf.h"
#include "gcs/gcs.h"

#define LISTER_AHEAD 2

struct lister;

/* Pages of prefix from token (NULL: the first page); page_size objects each. */
struct lister *lister_start(struct gcs_client *gcs, const char *prefix, const char *token,
			    int page_size);

/*
 * The next page's answer, in order: *body (caller frees) and *more (pages
 * follow). *token (caller frees) is what the page was asked for with, to
 * ask again after a failure. A failed fetch is rc < 0 with *e; nothing
 * more is fetched after it.
 */
int lister_next(struct lister *l, struct buf *body, int *more, char **token,
		struct gcs_error *e);

/* Waits for a request in flight, then frees everything. NULL is fine. */
void lister_stop(struct lister *l);

#endif
