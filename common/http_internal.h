/*
 * What http.c, http_direct.c and http_answer.c share, and nothing else
 * includes.
 */
#ifndef GCSMOUNT_HTTP_INTERNAL_H
#define GCSMOUNT_HTTP_INTERNAL_H

#include <curl/curl.h>
#include <stddef.h>
#include <sys/types.h>

#include "http.h"

#ifndef GCSMOUNT_VERSION
#define GCSMOUNT_VERSION "dev"
#endif
/* Every request names the tool and its version, so the server side (logs,
 * support cases, audit) can tell gcsmount's requests apart. */
#define HTTP_USER_AGENT "gcsmount/" GCSMOUNT_VERSION

/*
 * What every handle's connection is made with: req's URL and connect
 * timeout, the shared DNS cache and TLS sessions, TCP keep-alive, errbuf
 * (CURL_ERROR_SIZE) for libcurl's message, the User-Agent, and the CA certificates of
 * $SSL_CERT_FILE and $SSL_CERT_DIR when set (else the system's).
 */
void http_conn_setup(CURL *h, const struct http_req *req, char *errbuf);

/* resp emptied for a new exchange. */
void http_resp_start(struct http_resp *resp);
/* Say in resp->err that the transfer was abandoned at the shutdown deadline;
 * returns -ECANCELED. */
int http_abandoned_error(struct http_resp *resp);

/* The next "Name: value" line of a request's headers from *p, its length in
 * *len (no line end); NULL after the last. */
const char *http_header_next(const char **p, size_t *len);

/* The errno a failed libcurl call stands for (http_perform's codes). */
int http_curl_errno(CURLcode c);

/* One response header line, "Name: value" with or without its line end:
 * kept in resp when it is one of the headers http_resp names. */
void http_note_header(struct http_resp *resp, const char *line, size_t n);

/* Forget the headers noted so far (a new response began). */
void http_forget_headers(struct http_resp *resp);

/*
 * A GET whose 2xx body goes straight from the socket into req->out
 * (http_direct.c): same answer, codes and resp fields as http_perform.
 * http_direct_usable says whether req can take this path.
 */
int http_direct_usable(const struct http_req *req);
int http_direct_get(struct http_req *req, struct http_resp *resp);
void http_direct_cleanup(void);

#define HTTP_IN_CAP (16 * 1024)   /* the longest header or chunk-size line */

/* Where an answer's bytes come from (http_answer.c reads them). */
struct http_source {
	/* Up to cap bytes into dst: how many, 0 at the end of the bytes, or a
	 * negative errno with resp->err set. Adds what it gave to got. */
	ssize_t (*recv)(struct http_source *src, void *dst, size_t cap);
	struct http_resp *resp;
	size_t got;                 /* bytes received, head included */
	char in[HTTP_IN_CAP];       /* received, in[in_off..in_len) not yet used */
	size_t in_off, in_len;
};

/*
 * The answer to a GET, read from src: 0 or a negative errno, with
 * http_perform's codes and resp fields. *keep says whether the connection
 * may carry another exchange after it.
 */
int http_read_answer(struct http_source *src, struct http_req *req, int *keep);

/* The answer in bytes[0..len) read as from a connection handing out at most
 * piece bytes at a time (the fuzz target's way in). */
int http_answer_from_memory(const char *bytes, size_t len, size_t piece, struct http_req *req,
			    struct http_resp *resp, int *keep);

#endif
