/*
 * exchange: talk to a token endpoint. Retries 429/5xx and retryable
 * transport failures (an endpoint silent for TOKEN_SILENCE_S is one)
 * TOKEN_ATTEMPTS times with a short backoff; maps the outcome to 0 /
 * -EACCES / -EIO with one line for the log. The response body, which holds
 * the token, is wiped before it is freed.
 */
#include "auth/exchange.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "auth/secret.h"
#include "common/http.h"
#include "common/metrics.h"

int token_is_clean(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

void token_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Copy printable text, folding everything else to a space. */
static void copy_printable(char *out, size_t outlen, const char *s, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0')
			break;
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
	}
	out[o] = '\0';
}

void token_error_text(const char *body, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	if (!body || len == 0) {
		snprintf(out, outlen, "(empty answer)");
		return;
	}
	cJSON *root = cJSON_ParseWithLength(body, len);
	const cJSON *e = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
	const cJSON *d = root ? cJSON_GetObjectItemCaseSensitive(root, "error_description") : NULL;
	char a[128] = "", b[192] = "";
	if (cJSON_IsString(e))
		copy_printable(a, sizeof(a), e->valuestring, strlen(e->valuestring));
	else if (cJSON_IsObject(e)) {
		/* Google APIs' {"error": {"code":..., "message": ...}} shape. */
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
		if (cJSON_IsString(m))
			copy_printable(a, sizeof(a), m->valuestring, strlen(m->valuestring));
	}
	if (cJSON_IsString(d))
		copy_printable(b, sizeof(b), d->valuestring, strlen(d->valuestring));
	cJSON_Delete(root);
	if (a[0] && b[0])
		snprintf(out, outlen, "%s: %s", a, b);
	else if (a[0] || b[0])
		snprintf(out, outlen, "%s", a[0] ? a : b);
	else {
		char t[128];
		copy_printable(t, sizeof(t), body, len < 120 ? len : 120);
		snprintf(out, outlen, "\"%s\"", t);
	}
}

int token_parse_response(const char *body, size_t len, struct buf *token,
			 long *expires_in, char *err, size_t errlen)
{
	cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	if (!root || !cJSON_IsObject(root)) {
		snprintf(err, errlen, "%s", body && len ? "answer is not a JSON object" : "empty answer");
		cJSON_Delete(root);
		return -EIO;
	}
	int rc = 0;
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(root, "access_token");
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
	if (!cJSON_IsString(at) || !at->valuestring[0]) {
		snprintf(err, errlen, "answer has no \"access_token\"");
		rc = -EIO;
	} else if (!token_is_clean(at->valuestring, strlen(at->valuestring))) {
		snprintf(err, errlen, "\"access_token\" holds characters not allowed in a header");
		rc = -EIO;
	} else {
		/* Absent, not a number or absurdly long: the usual hour. A value
		 * <= 0 is passed on as it is: the caller decides what a token
		 * already expired is worth. */
		long life = TOKEN_DEFAULT_LIFETIME;
		double v = 0;
		char *end = NULL;
		int have = cJSON_IsNumber(ex);
		if (have)
			v = ex->valuedouble;
		else if (cJSON_IsString(ex)) { /* seen from some servers */
			v = strtod(ex->valuestring, &end);
			have = end != ex->valuestring;
		}
		if (have && v == v) /* not NaN */
			life = v >= 1e9 ? TOKEN_DEFAULT_LIFETIME : v <= -1e9 ? -1000000000L : (long)v;
		buf_reset(token);
		buf_puts(token, at->valuestring);
		*expires_in = life;
	}
	if (cJSON_IsString(at))
		auth_secret_wipe(at->valuestring, strlen(at->valuestring));
	cJSON_Delete(root);
	return rc;
}

/* Wipe and free a response (its body may carry a token). */
static void resp_done(struct http_resp *resp)
{
	if (resp->body.data)
		auth_secret_wipe(resp->body.data, resp->body.cap);
	http_resp_free(resp);
}

int token_request_perform(const struct token_request *r, struct buf *token,
			  long *expires_in, char *err, size_t errlen)
{
	int attempts = r->attempts > 0 ? r->attempts : TOKEN_ATTEMPTS;
	long backoff_ms = 200;
	int kind = metrics_kind("token");
	for (int i = 1;; i++) {
		struct http_req req;
		struct http_resp resp;
		http_req_init(&req, r->method, r->url);
		http_resp_init(&resp);
		if (r->form) {
			http_req_header(&req, "Content-Type: application/x-www-form-urlencoded");
			req.body = r->form;
			req.body_len = strlen(r->form);
		}
		if (r->header)
			http_req_header(&req, "%s", r->header);
		http_req_header(&req, "Accept: application/json");
		req.connect_timeout_ms = r->connect_timeout_ms;
		req.low_speed_secs = TOKEN_SILENCE_S;
		metrics_http_begin(kind);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int hrc = http_perform(&req, &resp);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		metrics_http_attempt(kind, hrc == 0 ? resp.status : 0,
				     (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
				     hrc == 0 ? req.body_len : 0, resp.body.len);
		http_req_free(&req);

		int rc, retry = 0;
		char why[320];
		if (hrc < 0) {
			snprintf(why, sizeof(why), "no answer (%s)", resp.err[0] ? resp.err : strerror(-hrc));
			rc = -EIO;
			retry = http_transport_retryable(hrc);
		} else if (resp.status >= 200 && resp.status < 300) {
			char perr[160];
			rc = token_parse_response(resp.body.data, resp.body.len, token, expires_in,
						  perr, sizeof(perr));
			if (rc == 0) {
				resp_done(&resp);
				if (*expires_in <= 0)
					snprintf(err, errlen, "token endpoint %s answered expires_in=%ld "
						 "(a token already expired; is a clock off?)",
						 r->url, *expires_in);
				return 0;
			}
			snprintf(why, sizeof(why), "HTTP %ld but %s", resp.status, perr);
		} else {
			char etext[288];
			token_error_text(resp.body.data, resp.body.len, etext, sizeof(etext));
			if (resp.status == 400 || resp.status == 401 || resp.status == 403) {
				snprintf(err, errlen, "token endpoint %s refused the credentials (HTTP %ld): %s",
					 r->url, resp.status, etext);
				resp_done(&resp);
				return -EACCES;
			}
			snprintf(why, sizeof(why), "HTTP %ld: %s", resp.status, etext);
			rc = -EIO;
			retry = resp.status == 429 || resp.status >= 500;
		}
		resp_done(&resp);
		if (!retry || i >= attempts) {
			snprintf(err, errlen, "token endpoint %s failed%s: %s", r->url,
				 i > 1 ? " after retries" : "", why);
			return rc;
		}
		metrics_http_retry(kind);
		token_sleep_ms(backoff_ms);
		backoff_ms *= 3;
	}
}
