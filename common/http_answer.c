/*
 * http_answer: one HTTP/1.1 answer read off a byte source, as the direct GET
 * (http_direct.c) reads it off a connection: the status line, any 1xx
 * answers before the real one, headers (those http_resp names are kept),
 * and the body by Content-Length, by chunks (extensions and trailers
 * skipped) or to the end of the connection. A 2xx body goes into
 * req->out, received there with no copy; any other into resp->body, for
 * its error message.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "buf.h"
#include "http_internal.h"

#define ERROR_BODY_MAX (1u << 20)  /* of a non-2xx answer, kept for its message */

/* One line of the answer's head or chunk framing, without its line end. */
static int read_line(struct http_source *x, char **line, size_t *len)
{
	for (;;) {
		char *start = x->in + x->in_off;
		char *nl = memchr(start, '\n', x->in_len - x->in_off);
		if (nl) {
			*line = start;
			*len = (size_t)(nl - start);
			if (*len && start[*len - 1] == '\r')
				(*len)--;
			x->in_off = (size_t)(nl - x->in) + 1;
			return 0;
		}
		if (x->in_off > 0) {
			memmove(x->in, start, x->in_len - x->in_off);
			x->in_len -= x->in_off;
			x->in_off = 0;
		}
		if (x->in_len == sizeof(x->in)) {
			snprintf(x->resp->err, sizeof(x->resp->err), "a header line over %d bytes",
				 HTTP_IN_CAP);
			return -EIO;
		}
		ssize_t n = x->recv(x, x->in + x->in_len, sizeof(x->in) - x->in_len);
		if (n < 0)
			return (int)n;
		if (n == 0) {
			snprintf(x->resp->err, sizeof(x->resp->err),
				 x->got ? "connection closed in the answer's head"
					: "connection closed before an answer");
			return -ECONNRESET;
		}
		x->in_len += (size_t)n;
	}
}

/* Up to cap body bytes into dst: those already received first, then from
 * the socket. 0 at the end of the connection. */
static ssize_t read_body(struct http_source *x, char *dst, size_t cap)
{
	size_t have = x->in_len - x->in_off;
	if (have > 0) {
		size_t n = have < cap ? have : cap;
		memcpy(dst, x->in + x->in_off, n);
		x->in_off += n;
		return (ssize_t)n;
	}
	return x->recv(x, dst, cap);
}

/* Where a body's bytes go: the caller's memory (a 2xx into req->out) or
 * resp->body (anything else). */
struct sink {
	struct http_req *req;
	struct http_resp *resp;
	int to_out;
	long status;
};

/* len bytes of body (all there is to the end of the connection when
 * to_eof) into the sink. */
static int take_body(struct http_source *x, struct sink *s, size_t len, int to_eof)
{
	char scratch[16 * 1024];
	while (len > 0 || to_eof) {
		char *dst;
		size_t room;
		if (s->to_out) {
			room = s->req->out_cap - s->resp->out_len;
			if (room == 0) {
				snprintf(x->resp->err, sizeof(x->resp->err),
					 "answer longer than the %zu bytes asked for", s->req->out_cap);
				return -EMSGSIZE;
			}
			dst = (char *)s->req->out + s->resp->out_len;
		} else {
			dst = scratch;
			room = sizeof(scratch);
		}
		if (!to_eof && room > len)
			room = len;
		ssize_t n = read_body(x, dst, room);
		if (n < 0)
			return (int)n;
		if (n == 0) {
			if (to_eof)
				return 0;
			snprintf(x->resp->err, sizeof(x->resp->err),
				 "connection closed with %zu body bytes still to come", len);
			return -ECONNRESET;
		}
		if (s->to_out) {
			s->resp->out_len += (size_t)n;
			if (s->req->on_out)
				s->req->on_out(s->req->on_out_arg, s->status, s->resp->out_len);
		} else if (s->resp->body.len < ERROR_BODY_MAX) {
			buf_append(&s->resp->body, dst, (size_t)n);
		}
		if (!to_eof)
			len -= (size_t)n;
	}
	return 0;
}

static int take_chunked(struct http_source *x, struct sink *s)
{
	for (;;) {
		char *line;
		size_t len;
		int rc = read_line(x, &line, &len);
		if (rc < 0)
			return rc;
		uint64_t size = 0;
		size_t i = 0;
		for (; i < len && i < 16; i++) {
			char ch = line[i];
			int d = ch >= '0' && ch <= '9' ? ch - '0'
				: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
				: ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
			if (d < 0)
				break;
			size = size * 16 + (uint64_t)d;
		}
		if (i == 0 || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t')) {
			snprintf(x->resp->err, sizeof(x->resp->err), "a bad chunk size line");
			return -EIO;
		}
		if (size == 0)
			break;
		rc = take_body(x, s, (size_t)size, 0);
		if (rc < 0)
			return rc;
		rc = read_line(x, &line, &len); /* the CRLF after the chunk */
		if (rc < 0)
			return rc;
	}
	for (;;) { /* trailers, up to the empty line */
		char *line;
		size_t len;
		int rc = read_line(x, &line, &len);
		if (rc < 0)
			return rc;
		if (len == 0)
			return 0;
	}
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	while (len && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len > 19)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* What the head says about the body that follows. */
struct head {
	long status;
	int http10;
	int close;
	int chunked;
	int has_length;
	uint64_t length;
};

static int read_head(struct http_source *x, struct head *hd)
{
	for (;;) { /* 1xx answers come before the real one */
		memset(hd, 0, sizeof(*hd));
		http_forget_headers(x->resp);
		char *line;
		size_t len;
		int rc = read_line(x, &line, &len);
		if (rc < 0)
			return rc;
		if (len < 12 || strncmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ' ||
		    line[9] < '1' || line[9] > '5' || line[10] < '0' || line[10] > '9' ||
		    line[11] < '0' || line[11] > '9') {
			snprintf(x->resp->err, sizeof(x->resp->err), "not an HTTP/1.x status line");
			return -EIO;
		}
		hd->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
		hd->http10 = line[7] == '0';
		hd->close = hd->http10;
		for (;;) {
			rc = read_line(x, &line, &len);
			if (rc < 0)
				return rc;
			if (len == 0)
				break;
			http_note_header(x->resp, line, len);
			const char *colon = memchr(line, ':', len);
			if (!colon)
				continue;
			size_t klen = (size_t)(colon - line);
			const char *v = colon + 1;
			size_t vlen = len - klen - 1;
#define IS(name) (klen == sizeof(name) - 1 && strncasecmp(line, name, klen) == 0)
			if (IS("content-length")) {
				if (parse_u64(v, vlen, &hd->length) < 0) {
					snprintf(x->resp->err, sizeof(x->resp->err),
						 "a bad Content-Length");
					return -EIO;
				}
				hd->has_length = 1;
			} else if (IS("transfer-encoding")) {
				hd->chunked = vlen >= 7 &&
					      strncasecmp(v + vlen - 7, "chunked", 7) == 0;
			} else if (IS("connection")) {
				for (size_t i = 0; i + 5 <= vlen; i++)
					if (strncasecmp(v + i, "close", 5) == 0)
						hd->close = 1;
			}
#undef IS
		}
		if (hd->status >= 200)
			return 0;
	}
}

int http_read_answer(struct http_source *x, struct http_req *req, int *keep)
{
	struct http_resp *resp = x->resp;
	*keep = 0;
	struct head hd;
	int rc = read_head(x, &hd);
	if (rc < 0)
		return rc;
	struct sink s = { req, resp, hd.status >= 200 && hd.status < 300, hd.status };
	if (hd.status == 204 || hd.status == 304)
		rc = 0;
	else if (hd.chunked)
		rc = take_chunked(x, &s);
	else if (hd.has_length && s.to_out && hd.length > req->out_cap)
		rc = -EMSGSIZE; /* not read: the connection is dropped */
	else if (hd.has_length)
		rc = take_body(x, &s, (size_t)hd.length, 0);
	else
		rc = take_body(x, &s, 0, 1);
	if (rc == -EMSGSIZE) {
		resp->status = hd.status; /* as http_perform: the status still counts */
		if (!resp->err[0])
			snprintf(resp->err, sizeof(resp->err), "answer of %" PRIu64
				 " bytes, more than the %zu asked for", hd.length, req->out_cap);
		return rc;
	}
	if (rc < 0)
		return rc;
	resp->status = hd.status;
	*keep = !hd.close && (hd.chunked || hd.has_length || hd.status == 204 ||
			      hd.status == 304);
	return 0;
}


/* A source that hands out bytes from memory, at most piece at a time. */
struct mem_source {
	struct http_source src;     /* first: mem_recv finds the rest from it */
	const char *bytes;
	size_t len, off, piece;
};

static ssize_t mem_recv(struct http_source *src, void *dst, size_t cap)
{
	struct mem_source *m = (struct mem_source *)src;
	size_t n = m->len - m->off;
	n = n < cap ? n : cap;
	n = n < m->piece ? n : m->piece;
	memcpy(dst, m->bytes + m->off, n);
	m->off += n;
	src->got += n;
	return (ssize_t)n;
}

int http_answer_from_memory(const char *bytes, size_t len, size_t piece, struct http_req *req,
			    struct http_resp *resp, int *keep)
{
	struct mem_source *m = xcalloc(1, sizeof(*m));
	m->src.recv = mem_recv;
	m->src.resp = resp;
	m->bytes = bytes;
	m->len = len;
	m->piece = piece ? piece : 1;
	http_resp_start(resp);
	int rc = http_read_answer(&m->src, req, keep);
	if (rc < 0 && rc != -EMSGSIZE)
		resp->status = 0;
	free(m);
	return rc;
}
