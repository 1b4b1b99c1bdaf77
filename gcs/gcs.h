/*
 * gcs: the Google Cloud Storage JSON API as the filesystem needs it.
 *
 * Knows buckets, objects, generations and HTTP status codes; never an inode.
 * Every call returns 0 or a negative errno and, on failure, fills a
 * struct gcs_error with the HTTP status (0 for a transport failure) and one
 * line of text fit for the log. Retries of retryable failures (408, 429, 5xx,
 * resets, timeouts) happen inside, for idempotent requests only, with
 * jittered exponential backoff up to the client's retry deadline; a 401 makes
 * auth/ fetch a new token once.
 *
 * Object names passed in are full object names (prefix included), raw UTF-8;
 * percent-encoding is done here. Memory returned in structs is owned by the
 * struct and released by the matching *_free/_clear function.
 */
#ifndef GCSMOUNT_GCS_H
#define GCSMOUNT_GCS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct auth;
struct buf;

struct gcs_error {
	int http;          /* HTTP status, 0 for a transport failure or a local error */
	int err;           /* the negative errno also returned */
	char msg[320];
};

/* 408, 429 and 5xx: the server may do it if asked again. */
int gcs_status_retryable(long status);

/* No precondition on generation. */
#define GCS_ANY_GENERATION ((int64_t)-1)

/* The largest object GCS holds: 5 TiB. */
#define GCS_MAX_OBJECT_SIZE (5ull << 40)

struct gcs_object {
	char *name;
	uint64_t size;
	int64_t generation;
	int64_t metageneration;
	struct timespec mtime;     /* from goog-reserved-file-mtime, mtime, gcsfuse_mtime, else updated */
	uint32_t crc32c;
	int has_crc32c;
	int component_count;       /* 1 for a plain object */
	int is_symlink;            /* goog-reserved-file-is-symlink or gcsfuse_symlink_target */
	char *symlink_target;      /* only for the old gcsfuse form, target in metadata */
};

struct gcs_list_page {
	struct gcs_object *items;
	size_t nitems;
	char **prefixes;
	size_t nprefixes;
	char *next_page_token;     /* NULL on the last page */
	size_t nbad;               /* entries that were no object or no string: left out */
};

struct gcs_config {
	const char *endpoint;      /* e.g. https://storage.googleapis.com (no trailing slash needed) */
	const char *bucket;
	struct auth *auth;         /* borrowed; must outlive the client */
	double retry_deadline;     /* seconds to keep retrying a retryable failure */
};

/* What an upload writes besides the bytes. */
struct gcs_write_opts {
	const char *content_type;  /* NULL: application/octet-stream */
	int64_t if_generation_match;   /* GCS_ANY_GENERATION, 0 (must not exist) or a generation */
	const struct timespec *mtime;  /* NULL: none recorded */
	int symlink;               /* mark as a symlink (target is the body) */
};

struct gcs_client;

struct gcs_client *gcs_client_new(const struct gcs_config *cfg);
void gcs_client_free(struct gcs_client *c);
/* Override the retry deadline (the pre-mount check uses a short one). */
void gcs_client_set_retry_deadline(struct gcs_client *c, double seconds);
const char *gcs_client_bucket(const struct gcs_client *c);
/* Access tokens fetched so far by the client's credentials (metrics). */
unsigned long gcs_client_token_refreshes(const struct gcs_client *c);

void gcs_object_clear(struct gcs_object *o);
void gcs_list_page_free(struct gcs_list_page *p);

int gcs_bucket_check(struct gcs_client *c, struct gcs_error *e);

/* -ENOENT when the object does not exist. */
int gcs_object_stat(struct gcs_client *c, const char *name, struct gcs_object *out,
		    struct gcs_error *e);

/*
 * Read exactly len bytes at off into buf from the object's given generation
 * (GCS_ANY_GENERATION: the live one). A body cut short is continued from
 * where it stopped. The caller asks only for bytes the generation holds (it
 * knows the size): an answer that ends sooner (a 416, a short 206) is the
 * server's mistake, not the end of the file, and is -EIO.
 */
int gcs_object_read(struct gcs_client *c, const char *name, int64_t generation,
		    uint64_t off, void *buf, size_t len, struct gcs_error *e);

/*
 * gcs_object_read that tells progress(arg, n) as bytes land: the first n
 * bytes of buf then hold the object's bytes and keep them (a retry writes
 * the same bytes again), so a reader may use them before the call returns.
 * n may repeat or go back after a retry; what was told stays valid. *got
 * is what arrived, len on success.
 */
int gcs_object_read_streamed(struct gcs_client *c, const char *name, int64_t generation,
			     uint64_t off, void *buf, size_t len, size_t *got,
			     void (*progress)(void *arg, size_t n), void *arg,
			     struct gcs_error *e);

/* The first page of a listing, asked for in the same round trip as a lookup. */
struct gcs_lookup_listing {
	const char *prefix;        /* in: the prefix to list, delimiter '/' */
	int max_results;           /* in */
	int ok;                    /* out: 1 when page holds the answer (free it) */
	struct gcs_list_page page;
};

/*
 * What a name is: *is_dir when anything is under dir_prefix ("name/"),
 * else the object `file` into out. -ENOENT when neither. Both questions go
 * out at once; on a failure worth retrying they are asked again one by one
 * with the usual retries. listing (may be NULL) goes out with them, once,
 * whatever the answer for the name; listing->ok says whether it came back.
 */
int gcs_lookup(struct gcs_client *c, const char *file, const char *dir_prefix,
	       struct gcs_lookup_listing *listing, struct gcs_object *out, int *is_dir,
	       struct gcs_error *e);

/* One page of objects.list. delimiter may be NULL; page_token NULL for the first page. */
int gcs_list(struct gcs_client *c, const char *prefix, const char *delimiter,
	     const char *page_token, int max_results, struct gcs_list_page *out,
	     struct gcs_error *e);
/*
 * gcs_list in two halves, so the next page can be asked for (its token
 * from gcs_list_token) while this one is parsed: the answer's body, then
 * the page parsed from it (-EIO, with a message, when it is no listing).
 */
int gcs_list_fetch(struct gcs_client *c, const char *prefix, const char *delimiter,
		   const char *page_token, int max_results, struct buf *body, struct gcs_error *e);
int gcs_list_read(const char *prefix, const struct buf *body, struct gcs_list_page *out,
		  struct gcs_error *e);

/* A single-request (multipart) upload of a small object held in memory. */
int gcs_object_insert(struct gcs_client *c, const char *name, const void *data, size_t len,
		      const struct gcs_write_opts *opts, struct gcs_object *out,
		      struct gcs_error *e);

int gcs_object_delete(struct gcs_client *c, const char *name, int64_t if_generation_match,
		      struct gcs_error *e);

/* Server-side copy src (at src_generation, or any) to dst; loops until done. */
int gcs_object_rewrite(struct gcs_client *c, const char *src, int64_t src_generation,
		       const char *dst, int64_t if_generation_match, struct gcs_object *out,
		       struct gcs_error *e);

/* A compose source, pinned to a generation (GCS_ANY_GENERATION: the live one). */
struct gcs_compose_src {
	const char *name;
	int64_t generation;
};

/* Compose srcs[0..n) (n <= 32) into dst, guarded by opts->if_generation_match. */
int gcs_object_compose(struct gcs_client *c, const char *dst, const struct gcs_compose_src *srcs,
		       int n, const struct gcs_write_opts *opts, struct gcs_object *out,
		       struct gcs_error *e);

/* Record mtime in the object's metadata (objects.patch). */
int gcs_object_set_mtime(struct gcs_client *c, const char *name, const struct timespec *mtime,
			 struct gcs_object *out, struct gcs_error *e);

/*
 * Resumable uploads. A session is started once; chunks are sent at the
 * offset the server has persisted. gcs_upload_chunk() sends len bytes at off
 * (from memory, or from fd at fd_off when data == NULL). total is the object
 * size when this chunk ends it, or -1 while it is unknown; every non-final
 * chunk must be a multiple of 256 KiB. crc is the CRC32C of the whole object,
 * sent with the final chunk. On return *persisted is what the server holds;
 * when the upload completed, *done is 1 and out holds the object.
 */
int gcs_upload_start(struct gcs_client *c, const char *name, const struct gcs_write_opts *opts,
		     char **session_url, struct gcs_error *e);
int gcs_upload_chunk(struct gcs_client *c, const char *session_url, uint64_t off,
		     const void *data, int fd, off_t fd_off, size_t len, int64_t total,
		     uint32_t crc, uint64_t *persisted, int *done, struct gcs_object *out,
		     struct gcs_error *e);
/* Ask a session what it holds (status query). -ENOENT: the session is gone. */
int gcs_upload_query(struct gcs_client *c, const char *session_url, uint64_t *persisted,
		     int *done, struct gcs_object *out, struct gcs_error *e);
void gcs_upload_cancel(struct gcs_client *c, const char *session_url);

#define GCS_CHUNK_ALIGN (256 * 1024)

/* Pure helpers, exposed for unit tests and fuzzing. */
int gcs_object_parse(const char *json, size_t len, struct gcs_object *out);
int gcs_list_parse(const char *json, size_t len, struct gcs_list_page *out);
/*
 * The nextPageToken of a listing without parsing the rest: *token (caller
 * frees) is what gcs_list_parse would give, NULL on the last page.
 * -EINVAL when the text is not a JSON object (then ask gcs_list_parse).
 */
int gcs_list_token(const char *json, size_t len, char **token);
void gcs_error_parse(const char *body, size_t len, char *msg, size_t msglen);
/* "bytes=0-N" → N+1; "" → 0. -EINVAL on garbage. */
int gcs_parse_range(const char *range, uint64_t *persisted);
/* HTTP status → negative errno: one table, used everywhere. */
int gcs_errno_for_status(long status);
/* Name rules of GCS: -ENAMETOOLONG past 1,024 bytes, -EINVAL for invalid UTF-8, CR/LF. */
int gcs_name_check(const char *name, size_t len);
/* RFC 3339 (with optional fraction and Z or offset) → timespec; -EINVAL on garbage. */
int gcs_parse_rfc3339(const char *s, struct timespec *ts);

#endif
