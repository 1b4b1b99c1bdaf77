/*
 * exchange: one trip to a token endpoint (OAuth2 token_uri or the metadata
 * server) through common/http, with retries for 5xx and transport failures,
 * and the parsing of its {"access_token", "expires_in"} answer.
 */
#ifndef GCSMOUNT_AUTH_EXCHANGE_H
#define GCSMOUNT_AUTH_EXCHANGE_H

#include <stddef.h>

#include "common/buf.h"

#define TOKEN_ATTEMPTS 3          /* tries for 5xx / transport failures */
#define TOKEN_DEFAULT_LIFETIME 3600
/* A token answer is a few hundred bytes: an endpoint that sends nothing for
 * this long is down. With the retries, a silent endpoint fails a fetch in
 * about TOKEN_ATTEMPTS * TOKEN_SILENCE_S seconds. */
#define TOKEN_SILENCE_S 10

struct token_request {
	const char *method;       /* "POST" or "GET" */
	const char *url;
	const char *header;       /* one extra "Name: value" line, or NULL */
	const char *form;         /* x-www-form-urlencoded body (POST), or NULL */
	long connect_timeout_ms;  /* 0: 10 s */
	int attempts;             /* 0: TOKEN_ATTEMPTS */
};

/*
 * Perform the request and parse the answer. On success token holds the
 * access token (the caller wipes it) and *expires_in its lifetime in
 * seconds as answered; when that is <= 0 (a token already expired), err
 * holds one line naming the endpoint and the value, else err is untouched.
 * Errors: -EACCES when the endpoint refused the credentials
 * (400/401/403, the line quotes error/error_description), -EIO for
 * anything else (5xx after retries, no answer, garbage).
 */
int token_request_perform(const struct token_request *r, struct buf *token,
			  long *expires_in, char *err, size_t errlen);

/* Parse a 2xx body. 0, or -EIO with the cause (not the body) in err.
 * *expires_in is the answer's value, which may be <= 0, or
 * TOKEN_DEFAULT_LIFETIME when it has none. */
int token_parse_response(const char *body, size_t len, struct buf *token,
			 long *expires_in, char *err, size_t errlen);

/* "invalid_grant: Invalid JWT Signature." from an error body: the JSON
 * error/error_description, else the first printable characters. */
void token_error_text(const char *body, size_t len, char *out, size_t outlen);

/* 1 when every byte of a token is visible ASCII (no space, no control):
 * what is safe to put into a header line. */
int token_is_clean(const char *s, size_t len);

/* Sleep ms milliseconds (retry backoff). */
void token_sleep_ms(long ms);

#endif
