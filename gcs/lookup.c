/*
 * lookup: "is this name a directory, a file, or nothing?" in one round
 * trip. A directory is any object under "name/" (the placeholder or
 * implicit); a file is the object "name". Both requests are sent at once
 * on two connections; only when one of them fails in a way worth retrying
 * are they asked again, one by one, through the normal retrying path.
 *
 * The caller may add a third request to the same round trip: the first
 * page of the listing of the directory the name is in. It is an extra that
 * costs no latency of its own; it is never retried (a failed one is simply
 * not there).
 */
#include "gcs/client_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/metrics.h"

static int lookup_slow(struct gcs_client *c, const char *file, const char *dir_prefix,
		       struct gcs_object *out, int *is_dir, struct gcs_error *e)
{
	struct gcs_list_page page;
	int rc = gcs_list(c, dir_prefix, "/", NULL, 1, &page, e);
	if (rc < 0)
		return rc;
	*is_dir = page.nitems > 0 || page.nprefixes > 0;
	gcs_list_page_free(&page);
	rc = gcs_object_stat(c, file, out, e);
	if (*is_dir)
		return 0;
	return rc;
}

static void list_url(struct gcs_client *c, struct buf *url, const char *prefix, int max_results)
{
	buf_printf(url, "%s/storage/v1/b/%s/o?delimiter=%%2F&maxResults=%d&prefix=", c->endpoint,
		   c->bucket_enc, max_results);
	http_urlencode(url, prefix, strlen(prefix));
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int gcs_lookup(struct gcs_client *c, const char *file, const char *dir_prefix,
	       struct gcs_lookup_listing *listing, struct gcs_object *out, int *is_dir,
	       struct gcs_error *e)
{
	memset(out, 0, sizeof(*out));
	*is_dir = 0;
	if (listing) {
		listing->ok = 0;
		memset(&listing->page, 0, sizeof(listing->page));
	}
	int n = listing ? 3 : 2;
	struct buf urls[3] = {BUF_INIT, BUF_INIT, BUF_INIT};
	list_url(c, &urls[0], dir_prefix, 1);
	gcs_object_url(c, &urls[1], "/storage/v1", file);
	if (listing)
		list_url(c, &urls[2], listing->prefix, listing->max_results);
	static const char *const what[3] = {"list", "stat", "list"};
	struct http_req reqs[3];
	struct http_resp resps[3];
	struct http_req *rp[3];
	struct http_resp *sp[3];
	int rcs[3] = {0, 0, 0};
	char hdr[4096];
	int rc = 0;
	memset(resps, 0, sizeof(resps));
	for (int k = 0; k < n; k++) {
		http_req_init(&reqs[k], "GET", urls[k].data);
		http_resp_init(&resps[k]);
		rp[k] = &reqs[k];
		sp[k] = &resps[k];
		if (rc == 0)
			rc = gcs_add_auth(c, &reqs[k], 0, hdr, sizeof(hdr), e);
	}
	int fast = 0;
	if (rc == 0) {
		int kinds[3];
		for (int k = 0; k < n; k++) {
			kinds[k] = metrics_kind(what[k]);
			metrics_http_begin(kinds[k]);
		}
		double sent_at = now_s();
		http_perform_many(rp, sp, rcs, n);
		double took = now_s() - sent_at;
		for (int k = 0; k < n; k++)
			metrics_http_attempt(kinds[k], rcs[k] == 0 ? resps[k].status : 0, took, 0,
					     resps[k].body.len);
		/* Fast path only for answers that need no retry. */
		fast = rcs[0] == 0 && rcs[1] == 0 && resps[0].status == 200 &&
		       (resps[1].status == 200 || resps[1].status == 404);
	}
	if (rc == 0 && fast) {
		struct gcs_list_page page;
		if (gcs_list_parse(resps[0].body.data ? resps[0].body.data : "", resps[0].body.len,
				   &page) < 0) {
			fast = 0;
		} else {
			*is_dir = page.nitems > 0 || page.nprefixes > 0;
			gcs_list_page_free(&page);
			if (resps[1].status == 200) {
				if (gcs_object_parse(resps[1].body.data ? resps[1].body.data : "",
						     resps[1].body.len, out) < 0)
					fast = 0;
				else
					rc = 0;
			} else {
				rc = -ENOENT;
				gcs_error_set(e, 404, rc, "lookup %s: no such object", file);
			}
			if (fast && *is_dir)
				rc = 0;
		}
	}
	if (listing && rcs[2] == 0 && resps[2].status == 200)
		listing->ok = gcs_list_parse(resps[2].body.data ? resps[2].body.data : "",
					     resps[2].body.len, &listing->page) == 0;
	for (int k = 0; k < n; k++) {
		http_req_free(&reqs[k]);
		http_resp_free(&resps[k]);
		buf_free(&urls[k]);
	}
	if (rc == 0 && !fast) {
		gcs_object_clear(out);
		rc = lookup_slow(c, file, dir_prefix, out, is_dir, e);
	}
	return rc;
}
