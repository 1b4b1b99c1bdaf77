/*
 * upload: resumable upload sessions.
 *
 * The session URI is the only state the server needs; the caller keeps it
 * (and persists it in the spool) with the offset the server last confirmed.
 * A chunk is retried by asking the session what it holds and resending
 * from there: the server may persist less than was sent (308 with a shorter
 * Range), and a non-final chunk must be a multiple of 256 KiB. Failed tries
 * back off as every request's do and go on to the retry deadline itself
 * (the last one at the deadline); a try that got bytes persisted starts the
 * count again.
 */
#include "gcs/client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/log.h"

int gcs_upload_start(struct gcs_client *c, const char *name, const struct gcs_write_opts *opts,
		     char **session_url, struct gcs_error *e)
{
	*session_url = NULL;
	struct buf url = BUF_INIT, body = BUF_INIT;
	buf_printf(&url, "%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=", c->endpoint,
		   c->bucket_enc);
	http_urlencode(&url, name, strlen(name));
	if (opts && opts->if_generation_match != GCS_ANY_GENERATION)
		buf_printf(&url, "&ifGenerationMatch=%" PRId64, opts->if_generation_match);
	gcs_write_metadata_json(&body, name, opts, NULL);
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "POST", url.data);
	http_resp_init(&resp);
	http_req_header(&req, "Content-Type: application/json; charset=UTF-8");
	http_req_header(&req, "X-Upload-Content-Type: %s",
			opts && opts->content_type ? opts->content_type : "application/octet-stream");
	req.body = body.data;
	req.body_len = body.len;
	/* Starting a session creates nothing: a repeat only makes another session. */
	int rc = gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 0, "upload start", name, e);
	if (rc == 0) {
		if (!resp.location[0]) {
			gcs_error_set(e, (int)resp.status, -EIO,
				      "upload start %s: no session URI in the answer", name);
			rc = -EIO;
		} else {
			*session_url = xstrdup(resp.location);
		}
	}
	http_req_free(&req);
	http_resp_free(&resp);
	buf_free(&url);
	buf_free(&body);
	return rc;
}

/* Interpret a session's answer: 308 (incomplete), 200/201 (done). */
static int session_answer(const struct http_resp *resp, uint64_t *persisted, int *done,
			  struct gcs_object *out, const char *what, struct gcs_error *e)
{
	*done = 0;
	if (resp->status == 308) {
		if (gcs_parse_range(resp->range, persisted) < 0) {
			gcs_error_set(e, 308, -EIO, "%s: bad Range header '%s'", what, resp->range);
			return -EIO;
		}
		return 0;
	}
	*done = 1;
	if (out && gcs_object_parse(resp->body.data ? resp->body.data : "", resp->body.len, out) < 0) {
		gcs_error_set(e, (int)resp->status, -EIO, "%s: unparsable object in the answer", what);
		return -EIO;
	}
	if (out)
		*persisted = out->size;
	return 0;
}

int gcs_upload_query(struct gcs_client *c, const char *session_url, uint64_t *persisted,
		     int *done, struct gcs_object *out, struct gcs_error *e)
{
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "PUT", session_url);
	http_resp_init(&resp);
	http_req_header(&req, "Content-Range: bytes */*");
	int rc = gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 308, "upload status", "session", e);
	if (rc == 0)
		rc = session_answer(&resp, persisted, done, out, "upload status", e);
	else if (resp.status == 404 || resp.status == 410)
		rc = -ENOENT;
	http_req_free(&req);
	http_resp_free(&resp);
	return rc;
}

static int chunk_once(struct gcs_client *c, const char *session_url, uint64_t off,
		      const void *data, int fd, off_t fd_off, size_t len, int64_t total,
		      uint32_t crc, struct http_resp *resp, struct gcs_error *e)
{
	struct http_req req;
	http_req_init(&req, "PUT", session_url);
	if (len == 0 && total >= 0)
		http_req_header(&req, "Content-Range: bytes */%" PRId64, total);
	else if (total >= 0)
		http_req_header(&req, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%" PRId64, off,
				off + len - 1, total);
	else
		http_req_header(&req, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/*", off,
				off + len - 1);
	if (total >= 0) {
		char b64[9];
		crc32c_base64(crc, b64);
		http_req_header(&req, "x-goog-hash: crc32c=%s", b64);
	}
	req.body = data;
	req.body_fd = data ? -1 : fd;
	req.body_off = fd_off;
	req.body_len = len;
	/* Not retried here: a failed chunk is followed by a status query. */
	int rc = gcs_call(c, &req, resp, GCS_NOT_IDEMPOTENT, 308, "upload", "chunk", e);
	http_req_free(&req);
	return rc;
}

int gcs_upload_chunk(struct gcs_client *c, const char *session_url, uint64_t off,
		     const void *data, int fd, off_t fd_off, size_t len, int64_t total,
		     uint32_t crc, uint64_t *persisted, int *done, struct gcs_object *out,
		     struct gcs_error *e)
{
	const uint64_t end = off + len;
	uint64_t at = off;
	struct gcs_retry pace;
	gcs_retry_begin(&pace);
	*done = 0;
	*persisted = off;
	for (;;) {
		struct http_resp resp;
		http_resp_init(&resp);
		size_t skip = (size_t)(at - off);
		const void *d = data ? (const char *)data + skip : NULL;
		int rc = chunk_once(c, session_url, at, d, fd, fd_off + (off_t)skip, len - skip,
				    total, crc, &resp, e);
		if (rc == 0) {
			rc = session_answer(&resp, persisted, done, out, "upload", e);
			http_resp_free(&resp);
			if (rc == 0 && !*done && *persisted > end) {
				gcs_error_set(e, 308, -EIO, "upload: the server claims %" PRIu64
					      " bytes, only %" PRIu64 " were sent", *persisted, end);
				return -EIO;
			}
			if (rc < 0 || *done || *persisted >= end)
				return rc;
			if (*persisted < off) {
				gcs_error_set(e, 308, -EIO, "upload: server lost bytes it had confirmed");
				return -EIO;
			}
			/* Persisted less than sent: resend the rest. */
			at = *persisted;
			continue;
		}
		long status = resp.status;
		http_resp_free(&resp);
		int retryable = status == 0 ? http_transport_retryable(rc)
					    : gcs_status_retryable(status);
		if (!retryable || !gcs_retry_wait(c, &pace))
			return rc;
		/* Ask the session what it holds, and go on from there. */
		struct gcs_error qe;
		int qrc = gcs_upload_query(c, session_url, persisted, done, out, &qe);
		if (qrc < 0) {
			*e = qe;
			return qrc;
		}
		if (*done)
			return 0;
		if (*persisted < off || *persisted > end) {
			gcs_error_set(e, 308, -EIO, "upload: session holds %" PRIu64
				      " bytes, expected %" PRIu64 "..%" PRIu64, *persisted, off, end);
			return -EIO;
		}
		if (*persisted > at)
			gcs_retry_begin(&pace);   /* it took bytes: a new stretch of tries */
		log_info("upload: chunk failed (%s), resuming at byte %" PRIu64, e->msg, *persisted);
		at = *persisted;
	}
}

void gcs_upload_cancel(struct gcs_client *c, const char *session_url)
{
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "DELETE", session_url);
	http_resp_init(&resp);
	struct gcs_error e;
	/* GCS answers 499 to a cancelled session; nothing to do on failure. */
	if (gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 499, "upload cancel", "session", &e) < 0)
		log_debug("upload cancel: %s", e.msg);
	http_req_free(&req);
	http_resp_free(&resp);
}
