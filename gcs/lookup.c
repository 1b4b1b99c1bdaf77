/*
 * lookup: "is this name a directory, a file, or nothing?" in one round
 * trip. A directory is any object under "name/" (the placeholder or
 * implicit); a file is the object "name". Both requests are sent at once
 * on two connections; only when one of them fails in a way worth retrying
 * are they asked again, one by one, through the normal retrying path.
 */
#include "gcs/client_internal.h"

#include <errno.h>
#include <string.h>

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

int gcs_lookup(struct gcs_client *c, const char *file, const char *dir_prefix,
	       struct gcs_object *out, int *is_dir, struct gcs_error *e)
{
	memset(out, 0, sizeof(*out));
	*is_dir = 0;
	struct buf lurl = BUF_INIT, surl = BUF_INIT;
	buf_printf(&lurl, "%s/storage/v1/b/%s/o?delimiter=%%2F&maxResults=1&prefix=", c->endpoint,
		   c->bucket_enc);
	http_urlencode(&lurl, dir_prefix, strlen(dir_prefix));
	gcs_object_url(c, &surl, "/storage/v1", file);
	struct http_req lreq, sreq;
	struct http_resp lresp, sresp;
	http_req_init(&lreq, "GET", lurl.data);
	http_req_init(&sreq, "GET", surl.data);
	http_resp_init(&lresp);
	http_resp_init(&sresp);
	char hdr[4096];
	int rc = gcs_add_auth(c, &lreq, 0, hdr, sizeof(hdr), e);
	if (rc == 0)
		rc = gcs_add_auth(c, &sreq, 0, hdr, sizeof(hdr), e);
	int fast = 0;
	if (rc == 0) {
		struct http_req *reqs[2] = {&lreq, &sreq};
		struct http_resp *resps[2] = {&lresp, &sresp};
		int rcs[2];
		http_perform_many(reqs, resps, rcs, 2);
		/* Fast path only for answers that need no retry. */
		fast = rcs[0] == 0 && rcs[1] == 0 && lresp.status == 200 &&
		       (sresp.status == 200 || sresp.status == 404);
	}
	if (rc == 0 && fast) {
		struct gcs_list_page page;
		if (gcs_list_parse(lresp.body.data ? lresp.body.data : "", lresp.body.len, &page) < 0) {
			fast = 0;
		} else {
			*is_dir = page.nitems > 0 || page.nprefixes > 0;
			gcs_list_page_free(&page);
			if (sresp.status == 200) {
				if (gcs_object_parse(sresp.body.data ? sresp.body.data : "", sresp.body.len,
						     out) < 0)
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
	http_req_free(&lreq);
	http_req_free(&sreq);
	http_resp_free(&lresp);
	http_resp_free(&sresp);
	buf_free(&lurl);
	buf_free(&surl);
	if (rc == 0 && !fast) {
		gcs_object_clear(out);
		rc = lookup_slow(c, file, dir_prefix, out, is_dir, e);
	}
	return rc;
}
