/*
 * Inside gcs/: the client struct and the one request path every call takes.
 * Not to be included outside gcs/.
 */
#ifndef GCSMOUNT_GCS_CLIENT_INTERNAL_H
#define GCSMOUNT_GCS_CLIENT_INTERNAL_H

#include "common/buf.h"
#include "common/http.h"
#include "gcs/gcs.h"

struct gcs_client {
	char *endpoint;         /* without trailing slash */
	char *endpoint_shown;   /* the same for messages: user:password@ left out */
	char *bucket;
	char *bucket_enc;       /* percent-encoded */
	struct auth *auth;
	double retry_deadline;
};

/* Whether a request may be retried blindly. */
enum gcs_idem { GCS_NOT_IDEMPOTENT, GCS_IDEMPOTENT };

/*
 * Send req with the Authorization header, retrying as the module header
 * says. what names the operation for error text ("stat", "list", ...).
 * Returns 0 when a 2xx (or a status in ok_extra, such as 308) arrived, else
 * a negative errno with e filled. resp holds the last answer either way.
 */
int gcs_call(struct gcs_client *c, struct http_req *req, struct http_resp *resp,
	     enum gcs_idem idem, long ok_extra, const char *what, const char *name,
	     struct gcs_error *e);

/*
 * The pace of one series of tries: full-jitter exponential backoff from
 * 100 ms doubling to 30 s, until the client's retry deadline counted from
 * gcs_retry_begin(). gcs_retry_wait() sleeps the next backoff, or what is
 * left before the deadline when that is shorter (the last try is then made
 * at the deadline), and returns 1; it returns 0 without sleeping once the
 * deadline has passed or the try at the deadline was made. It never sleeps
 * past the time transfers are abandoned (http_abandon_at), and returns 0
 * once that has come.
 */
struct gcs_retry {
	double start;
	double backoff;
	int last;       /* the try at the deadline was made */
};
void gcs_retry_begin(struct gcs_retry *r);
int gcs_retry_wait(const struct gcs_client *c, struct gcs_retry *r);

/* Put the Authorization line after the first base_len bytes of headers
 * (hdr receives it, for a later auth_invalidate). */
int gcs_add_auth(struct gcs_client *c, struct http_req *req, size_t base_len,
		 char *hdr, size_t hdrlen, struct gcs_error *e);

/* {endpoint}/storage/v1/b/{bucket}/o/{name} into url (reset first). */
void gcs_object_url(struct gcs_client *c, struct buf *url, const char *base, const char *name);

void gcs_error_set(struct gcs_error *e, int http, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The JSON metadata body an upload carries (name, contentType, metadata). */
void gcs_write_metadata_json(struct buf *out, const char *name, const struct gcs_write_opts *o,
			     const char *crc_b64);

#endif
