/*
 * objects: the object calls of the JSON API (get, media, list, insert,
 * delete, rewrite, compose, patch) and buckets.get.
 *
 * Idempotency decides retries: reads and deletes are idempotent, and so is
 * any write carrying a generation precondition (a repeat cannot apply twice).
 */
#include "gcs/client_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "common/crc32c.h"
#include "common/log.h"

static int parse_object_resp(const struct http_resp *resp, struct gcs_object *out,
			     const char *what, const char *name, struct gcs_error *e)
{
	if (!out)
		return 0;
	if (gcs_object_parse(resp->body.data ? resp->body.data : "", resp->body.len, out) < 0) {
		gcs_error_set(e, (int)resp->status, -EIO, "%s %s: server sent an object I cannot parse",
			      what, name);
		return -EIO;
	}
	return 0;
}

int gcs_bucket_check(struct gcs_client *c, struct gcs_error *e)
{
	struct buf url = BUF_INIT;
	buf_printf(&url, "%s/storage/v1/b/%s", c->endpoint, c->bucket_enc);
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "GET", url.data);
	http_resp_init(&resp);
	int rc = gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 0, "bucket", c->bucket, e);
	/* Say it plainly when the server answered; keep the cause when it did not
	 * (credentials refused, endpoint unreachable). */
	if (rc == -ENOENT && e->http == 404)
		gcs_error_set(e, 404, rc, "bucket %s does not exist (at %s)", c->bucket,
			      c->endpoint_shown);
	else if (rc == -EACCES && (e->http == 401 || e->http == 403)) {
		char note[256] = "";
		if (e->http == 401 && c->auth)
			auth_refusal_note(c->auth, note, sizeof(note));
		gcs_error_set(e, e->http, rc, "bucket %s: access denied (HTTP %d)%s%s", c->bucket,
			      e->http, note[0] ? ": " : "", note);
	}
	http_req_free(&req);
	http_resp_free(&resp);
	buf_free(&url);
	return rc;
}

int gcs_object_stat(struct gcs_client *c, const char *name, struct gcs_object *out,
		    struct gcs_error *e)
{
	struct buf url = BUF_INIT;
	gcs_object_url(c, &url, "/storage/v1", name);
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "GET", url.data);
	http_resp_init(&resp);
	int rc = gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 0, "stat", name, e);
	if (rc == 0)
		rc = parse_object_resp(&resp, out, "stat", name, e);
	http_req_free(&req);
	http_resp_free(&resp);
	buf_free(&url);
	return rc;
}

/* The progress of one ranged GET of gcs_object_read_streamed. */
struct read_watch {
	void (*progress)(void *arg, size_t n);
	void *arg;
	size_t base;            /* bytes of dst filled before this request */
	int from_zero;          /* the range starts at byte 0 (a 200 is the same bytes) */
	const struct http_resp *resp;   /* its headers, noted before the body */
	int64_t generation;     /* asked for */
};

/*
 * Whether a 2xx answer is the object's bytes: the bucket names the
 * generation it serves in x-goog-generation, which a proxy's or a captive
 * portal's own page lacks. Without this a 200 to a range from byte 0 with
 * a short page of HTML would be taken as the file's first bytes.
 */
static int from_the_object(const struct http_resp *resp, int64_t generation)
{
	const char *g = resp->goog_generation;
	if (!g[0])
		return 0;
	if (generation == GCS_ANY_GENERATION)
		return 1;
	char *end;
	errno = 0;
	long long v = strtoll(g, &end, 10);
	return errno == 0 && *end == '\0' && v == generation;
}

static void read_landed(void *arg, long status, size_t out_len)
{
	const struct read_watch *w = arg;
	/* Only a ranged answer holds the bytes asked for; a 200 to a range
	 * not starting at 0 is the object from its start and is refused. */
	if ((status == 206 || (status == 200 && w->from_zero)) &&
	    from_the_object(w->resp, w->generation))
		w->progress(w->arg, w->base + out_len);
}

int gcs_object_read(struct gcs_client *c, const char *name, int64_t generation,
		    uint64_t off, void *dst, size_t len, struct gcs_error *e)
{
	size_t got;
	return gcs_object_read_streamed(c, name, generation, off, dst, len, &got, NULL, NULL, e);
}

int gcs_object_read_streamed(struct gcs_client *c, const char *name, int64_t generation,
			     uint64_t off, void *dst, size_t len, size_t *got,
			     void (*progress)(void *arg, size_t n), void *arg,
			     struct gcs_error *e)
{
	*got = 0;
	if (len == 0)
		return 0;
	struct buf url = BUF_INIT;
	int rc = 0;
	int resumes = 0;
	while (*got < len) {
		gcs_object_url(c, &url, "/storage/v1", name);
		buf_puts(&url, "?alt=media");
		if (generation != GCS_ANY_GENERATION)
			buf_printf(&url, "&generation=%" PRId64, generation);
		struct http_req req;
		struct http_resp resp;
		http_req_init(&req, "GET", url.data);
		http_resp_init(&resp);
		uint64_t from = off + *got;
		http_req_header(&req, "Range: bytes=%" PRIu64 "-%" PRIu64, from,
				off + len - 1);
		req.out = (char *)dst + *got;
		req.out_cap = len - *got;
		struct read_watch watch = { progress, arg, *got, from == 0, &resp, generation };
		if (progress) {
			req.on_out = read_landed;
			req.on_out_arg = &watch;
		}
		rc = gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 0, "read", name, e);
		size_t n = resp.out_len;
		long status = resp.status;
		int genuine = from_the_object(&resp, generation);
		char said[sizeof(resp.goog_generation)];
		memcpy(said, resp.goog_generation, sizeof(said));
		http_req_free(&req);
		http_resp_free(&resp);
		if (rc == -EINVAL && status == 416) {
			rc = 0; /* at or past the end */
			break;
		}
		if ((status == 200 || status == 206) && n > 0 && !genuine) {
			gcs_error_set(e, status, -EIO, "read %s: the answer is not the object's "
				      "bytes (x-goog-generation \"%s\", asked for %" PRId64 "): a proxy "
				      "in the way?", name, said, generation);
			rc = -EIO;
			break;
		}
		if (status == 200 && (from != 0 || rc == -EMSGSIZE)) {
			/* A server that ignored Range sent the object from byte 0
			 * (or more of it than asked for). */
			gcs_error_set(e, 200, -EIO, "read %s: server ignored the Range header", name);
			rc = -EIO;
			break;
		}
		*got += n;
		if (http_transport_retryable(rc) && n > 0 && resumes++ < 16) {
			/* Body cut short: continue from the byte where it stopped. */
			log_info("read %s: body cut after %zu bytes, continuing at %" PRIu64,
				 name, n, off + *got);
			continue;
		}
		if (rc < 0 || n == 0)
			break;
		if (*got < len && status == 206)
			break; /* a short 206: the object ends here */
	}
	buf_free(&url);
	if (rc == 0 && *got < len) {
		/* A generation's bytes never change: asked for within its size,
		 * an answer ending sooner is not the end of the file. */
		gcs_error_set(e, 0, -EIO, "read %s: generation %" PRId64 " ended at byte %" PRIu64
			      ", before the size it was listed with", name, generation, off + *got);
		rc = -EIO;
	}
	return rc;
}

/* The fields of a listing that gcs_list_parse reads (object_json.c). */
#define LIST_FIELDS "nextPageToken,prefixes," \
	"items(name,size,generation,metageneration,componentCount,crc32c,updated,metadata)"

int gcs_list_fetch(struct gcs_client *c, const char *prefix, const char *delimiter,
		   const char *page_token, int max_results, struct buf *body, struct gcs_error *e)
{
	struct buf url = BUF_INIT;
	buf_printf(&url, "%s/storage/v1/b/%s/o?prefix=", c->endpoint, c->bucket_enc);
	http_urlencode(&url, prefix, strlen(prefix));
	if (delimiter) {
		buf_puts(&url, "&delimiter=");
		http_urlencode(&url, delimiter, strlen(delimiter));
	}
	if (max_results > 0)
		buf_printf(&url, "&maxResults=%d", max_results);
	if (page_token) {
		buf_puts(&url, "&pageToken=");
		http_urlencode(&url, page_token, strlen(page_token));
	}
	/* Only what gcs_list_parse reads: a page of 1,000 objects is then about
	 * a quarter of the bytes, and as much less to parse. */
	buf_puts(&url, "&fields=");
	http_urlencode(&url, LIST_FIELDS, strlen(LIST_FIELDS));
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "GET", url.data);
	http_resp_init(&resp);
	int rc = gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 0, "list", prefix[0] ? prefix : "/", e);
	if (rc == 0) {
		*body = resp.body;
		resp.body = (struct buf)BUF_INIT;
	}
	http_req_free(&req);
	http_resp_free(&resp);
	buf_free(&url);
	return rc;
}

int gcs_list_read(const char *prefix, const struct buf *body, struct gcs_list_page *out,
		  struct gcs_error *e)
{
	if (gcs_list_parse(body->data ? body->data : "", body->len, out) == 0)
		return 0;
	gcs_error_set(e, 200, -EIO, "list %s: server sent a listing I cannot parse", prefix);
	return -EIO;
}

int gcs_list(struct gcs_client *c, const char *prefix, const char *delimiter,
	     const char *page_token, int max_results, struct gcs_list_page *out,
	     struct gcs_error *e)
{
	memset(out, 0, sizeof(*out));
	struct buf body = BUF_INIT;
	int rc = gcs_list_fetch(c, prefix, delimiter, page_token, max_results, &body, e);
	if (rc == 0)
		rc = gcs_list_read(prefix, &body, out, e);
	buf_free(&body);
	return rc;
}

void gcs_write_metadata_json(struct buf *out, const char *name, const struct gcs_write_opts *o,
			     const char *crc_b64)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "name", name);
	cJSON_AddStringToObject(j, "contentType",
				o && o->content_type ? o->content_type : "application/octet-stream");
	if (crc_b64)
		cJSON_AddStringToObject(j, "crc32c", crc_b64);
	if (o && (o->mtime || o->symlink)) {
		cJSON *md = cJSON_AddObjectToObject(j, "metadata");
		if (o->mtime) {
			char secs[32], rfc[64];
			struct tm tm;
			snprintf(secs, sizeof(secs), "%lld", (long long)o->mtime->tv_sec);
			gmtime_r(&o->mtime->tv_sec, &tm);
			size_t n = strftime(rfc, sizeof(rfc), "%Y-%m-%dT%H:%M:%S", &tm);
			snprintf(rfc + n, sizeof(rfc) - n, ".%09ldZ", o->mtime->tv_nsec);
			cJSON_AddStringToObject(md, "goog-reserved-file-mtime", secs);
			cJSON_AddStringToObject(md, "mtime", rfc);
		}
		if (o->symlink)
			cJSON_AddStringToObject(md, "goog-reserved-file-is-symlink", "true");
	}
	char *s = cJSON_PrintUnformatted(j);
	buf_puts(out, s);
	free(s);
	cJSON_Delete(j);
}

static void add_generation_match(struct buf *url, int64_t gen, char sep)
{
	if (gen != GCS_ANY_GENERATION)
		buf_printf(url, "%cifGenerationMatch=%" PRId64, sep, gen);
}

int gcs_object_insert(struct gcs_client *c, const char *name, const void *data, size_t len,
		      const struct gcs_write_opts *opts, struct gcs_object *out,
		      struct gcs_error *e)
{
	static const char boundary[] = "gcsmount_part_boundary_7d1f3e";
	struct buf url = BUF_INIT, body = BUF_INIT;
	buf_printf(&url, "%s/upload/storage/v1/b/%s/o?uploadType=multipart", c->endpoint,
		   c->bucket_enc);
	int64_t gen = opts ? opts->if_generation_match : GCS_ANY_GENERATION;
	add_generation_match(&url, gen, '&');
	char crc[9];
	crc32c_base64(crc32c_update(0, data, len), crc);
	buf_printf(&body, "--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n", boundary);
	gcs_write_metadata_json(&body, name, opts, crc);
	buf_printf(&body, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary,
		   opts && opts->content_type ? opts->content_type : "application/octet-stream");
	buf_append(&body, data, len);
	buf_printf(&body, "\r\n--%s--\r\n", boundary);
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "POST", url.data);
	http_resp_init(&resp);
	http_req_header(&req, "Content-Type: multipart/related; boundary=%s", boundary);
	req.body = body.data;
	req.body_len = body.len;
	int rc = gcs_call(c, &req, &resp, gen != GCS_ANY_GENERATION ? GCS_IDEMPOTENT : GCS_NOT_IDEMPOTENT,
			  0, "upload", name, e);
	if (rc == 0)
		rc = parse_object_resp(&resp, out, "upload", name, e);
	http_req_free(&req);
	http_resp_free(&resp);
	buf_free(&url);
	buf_free(&body);
	return rc;
}

int gcs_object_delete(struct gcs_client *c, const char *name, int64_t if_generation_match,
		      struct gcs_error *e)
{
	struct buf url = BUF_INIT;
	gcs_object_url(c, &url, "/storage/v1", name);
	add_generation_match(&url, if_generation_match, '?');
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "DELETE", url.data);
	http_resp_init(&resp);
	int rc = gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 0, "delete", name, e);
	http_req_free(&req);
	http_resp_free(&resp);
	buf_free(&url);
	return rc;
}

int gcs_object_rewrite(struct gcs_client *c, const char *src, int64_t src_generation,
		       const char *dst, int64_t if_generation_match, struct gcs_object *out,
		       struct gcs_error *e)
{
	struct buf url = BUF_INIT, token = BUF_INIT, base = BUF_INIT;
	gcs_object_url(c, &base, "/storage/v1", src);
	buf_printf(&base, "/rewriteTo/b/%s/o/", c->bucket_enc);
	http_urlencode(&base, dst, strlen(dst));
	int rc;
	for (int round = 0;; round++) {
		buf_reset(&url);
		buf_append(&url, base.data, base.len);
		buf_putc(&url, '?');
		buf_puts(&url, "maxBytesRewrittenPerCall=1073741824");
		if (src_generation != GCS_ANY_GENERATION)
			buf_printf(&url, "&ifSourceGenerationMatch=%" PRId64, src_generation);
		add_generation_match(&url, if_generation_match, '&');
		if (token.len) {
			buf_puts(&url, "&rewriteToken=");
			http_urlencode(&url, token.data, token.len);
		}
		struct http_req req;
		struct http_resp resp;
		http_req_init(&req, "POST", url.data);
		http_resp_init(&resp);
		http_req_header(&req, "Content-Type: application/json");
		req.body = "{}";
		req.body_len = 2;
		/* A rewrite pinned to a source generation and guarded on the
		 * destination can be repeated safely; a plain one too, since a
		 * repeat copies the same bytes again. */
		rc = gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 0, "rename", src, e);
		cJSON *j = rc == 0 ? cJSON_ParseWithLength(resp.body.data, resp.body.len) : NULL;
		http_req_free(&req);
		http_resp_free(&resp);
		if (rc < 0)
			break;
		const cJSON *done = cJSON_GetObjectItemCaseSensitive(j, "done");
		const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "rewriteToken");
		if (cJSON_IsTrue(done)) {
			const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "resource");
			char *s = res ? cJSON_PrintUnformatted(res) : NULL;
			if (out && (!s || gcs_object_parse(s, strlen(s), out) < 0)) {
				gcs_error_set(e, 200, -EIO, "rename %s: unparsable rewrite answer", src);
				rc = -EIO;
			}
			free(s);
			cJSON_Delete(j);
			break;
		}
		if (!cJSON_IsString(tok) || round > 10000) {
			gcs_error_set(e, 200, -EIO, "rename %s: rewrite answer without done or token", src);
			cJSON_Delete(j);
			rc = -EIO;
			break;
		}
		buf_reset(&token);
		buf_puts(&token, tok->valuestring);
		cJSON_Delete(j);
	}
	buf_free(&url);
	buf_free(&token);
	buf_free(&base);
	return rc;
}

int gcs_object_compose(struct gcs_client *c, const char *dst, const struct gcs_compose_src *srcs,
		       int n, const struct gcs_write_opts *opts, struct gcs_object *out,
		       struct gcs_error *e)
{
	if (n < 1 || n > 32) {
		gcs_error_set(e, 0, -EINVAL, "compose %s: %d sources (1 to 32 allowed)", dst, n);
		return -EINVAL;
	}
	struct buf url = BUF_INIT, body = BUF_INIT;
	gcs_object_url(c, &url, "/storage/v1", dst);
	buf_puts(&url, "/compose");
	int64_t gen = opts ? opts->if_generation_match : GCS_ANY_GENERATION;
	add_generation_match(&url, gen, '?');
	cJSON *j = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(j, "sourceObjects");
	for (int i = 0; i < n; i++) {
		cJSON *s = cJSON_CreateObject();
		cJSON_AddStringToObject(s, "name", srcs[i].name);
		if (srcs[i].generation != GCS_ANY_GENERATION) {
			char sgen[32];
			snprintf(sgen, sizeof(sgen), "%" PRId64, srcs[i].generation);
			cJSON_AddStringToObject(s, "generation", sgen);
		}
		cJSON_AddItemToArray(arr, s);
	}
	struct buf md = BUF_INIT;
	gcs_write_metadata_json(&md, dst, opts, NULL);
	cJSON_AddItemToObject(j, "destination", cJSON_Parse(md.data));
	buf_free(&md);
	char *s = cJSON_PrintUnformatted(j);
	buf_puts(&body, s);
	free(s);
	cJSON_Delete(j);
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "POST", url.data);
	http_resp_init(&resp);
	http_req_header(&req, "Content-Type: application/json");
	req.body = body.data;
	req.body_len = body.len;
	int rc = gcs_call(c, &req, &resp, gen != GCS_ANY_GENERATION ? GCS_IDEMPOTENT : GCS_NOT_IDEMPOTENT,
			  0, "compose", dst, e);
	if (rc == 0)
		rc = parse_object_resp(&resp, out, "compose", dst, e);
	http_req_free(&req);
	http_resp_free(&resp);
	buf_free(&url);
	buf_free(&body);
	return rc;
}

int gcs_object_set_mtime(struct gcs_client *c, const char *name, const struct timespec *mtime,
			 struct gcs_object *out, struct gcs_error *e)
{
	struct buf url = BUF_INIT, body = BUF_INIT, md = BUF_INIT;
	gcs_object_url(c, &url, "/storage/v1", name);
	struct gcs_write_opts o = {.mtime = mtime, .if_generation_match = GCS_ANY_GENERATION};
	gcs_write_metadata_json(&md, name, &o, NULL);
	/* Only the metadata map goes into the patch. */
	cJSON *full = cJSON_Parse(md.data);
	cJSON *patch = cJSON_CreateObject();
	cJSON_AddItemToObject(patch, "metadata",
			      cJSON_DetachItemFromObjectCaseSensitive(full, "metadata"));
	char *s = cJSON_PrintUnformatted(patch);
	buf_puts(&body, s);
	free(s);
	cJSON_Delete(full);
	cJSON_Delete(patch);
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "PATCH", url.data);
	http_resp_init(&resp);
	http_req_header(&req, "Content-Type: application/json");
	req.body = body.data;
	req.body_len = body.len;
	/* Setting the same metadata twice has the same effect. */
	int rc = gcs_call(c, &req, &resp, GCS_IDEMPOTENT, 0, "set mtime", name, e);
	if (rc == 0)
		rc = parse_object_resp(&resp, out, "set mtime", name, e);
	http_req_free(&req);
	http_resp_free(&resp);
	buf_free(&url);
	buf_free(&body);
	buf_free(&md);
	return rc;
}
