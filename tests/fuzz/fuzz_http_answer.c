/*
 * fuzz_http_answer: an HTTP/1.1 answer as the direct GET reads it off a
 * connection (common/http_answer.c): status line, headers, 1xx answers,
 * Content-Length, chunked framing, trailers, to-the-end bodies.
 *
 * Input: one byte choosing how large out is, then the answer's bytes. The
 * answer is read twice, all at once and in pieces of a size taken from the
 * input, and both reads must agree on everything: how a connection hands
 * the bytes over must never change what they mean. A 2xx body never
 * overflows out, progress never goes back, an error names itself.
 */
#include "common/buf.h"
#include "common/http.h"
#include "common/http_internal.h"

#include <errno.h>

#include "fuzz_util.h"

struct watch {
	size_t last;
	int backwards;
};

static void on_out(void *arg, long status, size_t out_len)
{
	struct watch *w = arg;
	if (status < 200 || status > 299 || out_len < w->last)
		w->backwards = 1;
	w->last = out_len;
}

struct result {
	int rc, keep;
	long status;
	size_t out_len;
	char *out;
	struct buf body;
	char content_range[96];
};

static void read_once(const char *ans, size_t len, size_t piece, size_t cap, struct result *r)
{
	struct http_req req;
	struct http_resp resp;
	http_req_init(&req, "GET", "http://h/o");
	http_resp_init(&resp);
	r->out = malloc(cap ? cap : 1);
	if (!r->out)
		abort();
	struct watch w = { 0, 0 };
	req.out = r->out;
	req.out_cap = cap;
	req.on_out = on_out;
	req.on_out_arg = &w;
	r->rc = http_answer_from_memory(ans, len, piece, &req, &resp, &r->keep);
	r->status = resp.status;
	r->out_len = resp.out_len;
	r->body = resp.body;
	resp.body = (struct buf)BUF_INIT;
	memcpy(r->content_range, resp.content_range, sizeof(r->content_range));
	FUZZ_ASSERT(!w.backwards);
	FUZZ_ASSERT(r->out_len <= cap);
	FUZZ_ASSERT(w.last == r->out_len);
	FUZZ_ASSERT(r->rc <= 0);
	if (r->rc < 0)
		FUZZ_ASSERT(resp.err[0] != '\0');
	if (r->rc < 0 && r->rc != -EMSGSIZE)
		FUZZ_ASSERT(r->status == 0);
	if (r->rc == 0)
		FUZZ_ASSERT(r->status >= 200 && r->status <= 599);
	if (r->rc == 0 && r->status / 100 != 2)
		FUZZ_ASSERT(r->out_len == 0);
	http_req_free(&req);
	http_resp_free(&resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t cap = (size_t)data[0] * 3;
	size_t piece = (size_t)data[1] % 7 + 1;
	data += 2;
	size -= 2;
	/* libFuzzer's block as it is: a read past its end is ASan's to flag */
	const char *ans = (const char *)data;
	struct result whole, bits;
	read_once(ans, size, size ? size : 1, cap, &whole);
	read_once(ans, size, piece, cap, &bits);
	FUZZ_ASSERT(whole.rc == bits.rc);
	FUZZ_ASSERT(whole.status == bits.status);
	FUZZ_ASSERT(whole.keep == bits.keep);
	FUZZ_ASSERT(whole.out_len == bits.out_len);
	FUZZ_ASSERT(memcmp(whole.out, bits.out, whole.out_len) == 0);
	FUZZ_ASSERT(whole.body.len == bits.body.len);
	FUZZ_ASSERT(whole.body.len == 0 || memcmp(whole.body.data, bits.body.data, whole.body.len) == 0);
	FUZZ_ASSERT(strcmp(whole.content_range, bits.content_range) == 0);
	free(whole.out);
	free(bits.out);
	buf_free(&whole.body);
	buf_free(&bits.body);
	return 0;
}
