/* Unit tests of the token exchange: endpoint answers, and auth against a local HTTP server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "auth/auth.h"
#include "auth/exchange.h"
#include "auth/jwt.h"
#include "auth/token.h"
#include "common/buf.h"
#include "auth_test_util.h"

static EVP_PKEY *key_a, *key_b;
static char *pem_a, *pem_b;

/* ------------------------------------------------------------------ */
/* token endpoint answers                                             */

static void test_token_error_text(void **state)
{
	(void)state;
	char out[256];
	const char *b = "{\"error\":\"invalid_grant\",\"error_description\":\"Bad\\nRequest\"}";
	token_error_text(b, strlen(b), out, sizeof(out));
	assert_string_equal(out, "invalid_grant: Bad Request");
	b = "{\"error\":{\"code\":401,\"message\":\"Login Required.\"}}";
	token_error_text(b, strlen(b), out, sizeof(out));
	assert_string_equal(out, "Login Required.");
	b = "plain\ntext";
	token_error_text(b, strlen(b), out, sizeof(out));
	assert_string_equal(out, "\"plain text\"");
	token_error_text("", 0, out, sizeof(out));
	assert_string_equal(out, "(empty answer)");

	struct buf tok = BUF_INIT;
	long life = 0;
	char err[128];
	b = "{\"access_token\":\"t\",\"expires_in\":\"120\"}";
	assert_int_equal(token_parse_response(b, strlen(b), &tok, &life, err, sizeof(err)), 0);
	assert_string_equal(tok.data, "t");
	assert_int_equal(life, 120);
	b = "{\"access_token\":\"t\"}";
	assert_int_equal(token_parse_response(b, strlen(b), &tok, &life, err, sizeof(err)), 0);
	assert_int_equal(life, TOKEN_DEFAULT_LIFETIME);
	b = "{\"expires_in\":5}";
	assert_int_equal(token_parse_response(b, strlen(b), &tok, &life, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "no \"access_token\""));
	/* expired answers are passed on as they are; nonsense is the usual hour */
	static const struct { const char *body; long life; } lives[] = {
		{"{\"access_token\":\"t\",\"expires_in\":0}", 0},
		{"{\"access_token\":\"t\",\"expires_in\":-30}", -30},
		{"{\"access_token\":\"t\",\"expires_in\":\"-5\"}", -5},
		{"{\"access_token\":\"t\",\"expires_in\":0.5}", 0},
		{"{\"access_token\":\"t\",\"expires_in\":-1e30}", -1000000000L},
		{"{\"access_token\":\"t\",\"expires_in\":1e30}", TOKEN_DEFAULT_LIFETIME},
		{"{\"access_token\":\"t\",\"expires_in\":\"soon\"}", TOKEN_DEFAULT_LIFETIME},
		{"{\"access_token\":\"t\",\"expires_in\":\"nan\"}", TOKEN_DEFAULT_LIFETIME},
		{"{\"access_token\":\"t\",\"expires_in\":null}", TOKEN_DEFAULT_LIFETIME},
	};
	for (size_t i = 0; i < sizeof(lives) / sizeof(lives[0]); i++) {
		b = lives[i].body;
		assert_int_equal(token_parse_response(b, strlen(b), &tok, &life, err, sizeof(err)), 0);
		if (life != lives[i].life)
			fail_msg("%s: life %ld, want %ld", b, life, lives[i].life);
	}
	buf_free_secret(&tok);
}

/* ------------------------------------------------------------------ */
/* a tiny HTTP server on 127.0.0.1                                    */

struct srv {
	int fd;
	int port;
	pthread_t th;
	pthread_mutex_t mu;
	int stop;
	/* answer */
	int status;             /* 0: a token answer */
	char body[1024];        /* for status != 0 */
	int expires_in;
	int delay_ms;
	int need_flavor;        /* 403 without Metadata-Flavor: Google */
	int transient;          /* > 0: answer status/body this many times, then tokens */
	/* record */
	int requests;           /* all requests */
	int token_requests;     /* requests whose path holds "token" */
	char last[16384];       /* last token request, headers and body */
};

static struct srv S;

static void srv_handle(int cfd)
{
	char req[16384];
	size_t n = 0;
	char *hend = NULL;
	while (n + 1 < sizeof(req)) {
		ssize_t r = read(cfd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			return;
		n += (size_t)r;
		req[n] = '\0';
		if ((hend = strstr(req, "\r\n\r\n")))
			break;
	}
	if (!hend)
		return;
	size_t clen = 0;
	for (char *p = req; p < hend; p = strstr(p, "\r\n") + 2)
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			clen = strtoul(p + 15, NULL, 10);
	size_t have = n - (size_t)(hend + 4 - req);
	while (have < clen && n + 1 < sizeof(req)) {
		ssize_t r = read(cfd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		have += (size_t)r;
	}
	req[n] = '\0';

	pthread_mutex_lock(&S.mu);
	S.requests++;
	int is_token = strstr(req, "token") && strstr(req, "token") < strstr(req, " HTTP/1.1");
	int num = is_token ? ++S.token_requests : 0;
	if (is_token)
		snprintf(S.last, sizeof(S.last), "%s", req);
	int status = S.status, delay = S.delay_ms, exp = S.expires_in;
	if (is_token && S.transient > 0 && --S.transient == 0)
		S.status = 0;
	char body[1024];
	snprintf(body, sizeof(body), "%s", S.body);
	if (S.need_flavor && !strcasestr(req, "\r\nMetadata-Flavor: Google\r\n")) {
		status = 403;
		snprintf(body, sizeof(body), "missing Metadata-Flavor");
	}
	pthread_mutex_unlock(&S.mu);

	if (!is_token) {
		status = 200;
		snprintf(body, sizeof(body), "computeMetadata/\n");
	} else if (status == 0) {
		status = 200;
		snprintf(body, sizeof(body),
			 "{\"access_token\":\"ya29.tok-%d\",\"expires_in\":%d,\"token_type\":\"Bearer\"}",
			 num, exp);
	}
	if (delay)
		token_sleep_ms(delay);
	char resp[2048];
	int len = snprintf(resp, sizeof(resp),
			   "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
			   "Connection: close\r\n\r\n%s", status, strlen(body), body);
	ssize_t w = write(cfd, resp, (size_t)len);
	(void)w;
}

static void *srv_main(void *arg)
{
	(void)arg;
	for (;;) {
		int cfd = accept(S.fd, NULL, NULL);
		pthread_mutex_lock(&S.mu);
		int stop = S.stop;
		pthread_mutex_unlock(&S.mu);
		if (stop) {
			if (cfd >= 0)
				close(cfd);
			return NULL;
		}
		if (cfd < 0)
			continue;
		srv_handle(cfd);
		close(cfd);
	}
}

static int srv_start(void **state)
{
	(void)state;
	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.mu, NULL);
	S.expires_in = 3600;
	S.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	setsockopt(S.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(S.fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(S.fd, 64))
		return -1;
	socklen_t sl = sizeof(sa);
	getsockname(S.fd, (struct sockaddr *)&sa, &sl);
	S.port = ntohs(sa.sin_port);
	pthread_create(&S.th, NULL, srv_main, NULL);
	return env_reset(NULL);
}

static int srv_stop(void **state)
{
	(void)state;
	pthread_mutex_lock(&S.mu);
	S.stop = 1;
	pthread_mutex_unlock(&S.mu);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		shutdown(S.fd, SHUT_RDWR);
	close(c);
	pthread_join(S.th, NULL);
	close(S.fd);
	pthread_mutex_destroy(&S.mu);
	return 0;
}

static void srv_answer(int status, const char *body)
{
	pthread_mutex_lock(&S.mu);
	S.status = status;
	snprintf(S.body, sizeof(S.body), "%s", body ? body : "");
	pthread_mutex_unlock(&S.mu);
}

static int srv_token_requests(void)
{
	pthread_mutex_lock(&S.mu);
	int n = S.token_requests;
	pthread_mutex_unlock(&S.mu);
	return n;
}

static char *srv_token_uri(void)
{
	static char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/token", S.port);
	return u;
}

/* The assertion of the last JWT exchange; checks the request shape. */
static char *last_assertion(void)
{
	pthread_mutex_lock(&S.mu);
	char *req = strdup(S.last);
	pthread_mutex_unlock(&S.mu);
	assert_true(strncmp(req, "POST /token HTTP/1.1\r\n", 22) == 0);
	assert_non_null(strcasestr(req, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
	char *body = strstr(req, "\r\n\r\n") + 4;
	const char *pfx = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
	assert_true(strncmp(body, pfx, strlen(pfx)) == 0);
	char *a = strdup(body + strlen(pfx));
	free(req);
	return a;
}

static cJSON *jwt_claims_of(const char *jwt, EVP_PKEY *pub)
{
	const char *d1 = strchr(jwt, '.');
	const char *d2 = strrchr(jwt, '.');
	assert_true(d1 && d2 && d1 < d2);
	struct buf sig = BUF_INIT, cl = BUF_INIT;
	assert_int_equal(jwt_base64url_decode(&sig, d2 + 1, strlen(d2 + 1)), 0);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	assert_int_equal(EVP_DigestVerify(md, (unsigned char *)sig.data, sig.len,
					  (const unsigned char *)jwt, (size_t)(d2 - jwt)), 1);
	EVP_MD_CTX_free(md);
	assert_int_equal(jwt_base64url_decode(&cl, d1 + 1, (size_t)(d2 - d1 - 1)), 0);
	cJSON *j = cJSON_Parse(cl.data);
	assert_non_null(j);
	buf_free(&sig);
	buf_free(&cl);
	return j;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static struct auth *sa_auth(const char *file, EVP_PKEY *unused, const char *email,
			    const char *pem, const char *scope)
{
	(void)unused;
	char *j = sa_json("service_account", email, pem, srv_token_uri());
	write_file(tpath(file), j);
	free(j);
	struct auth_config cfg = {.key_file = tpath(file), .scope = scope};
	char err[512];
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	if (!a)
		fail_msg("auth_new: %s", err);
	return a;
}

static void hdr_is(struct auth *a, const char *want)
{
	char hdr[512], err[512] = "";
	int rc = auth_header(a, hdr, sizeof(hdr), err, sizeof(err));
	if (rc)
		fail_msg("auth_header: %d %s", rc, err);
	assert_string_equal(hdr, want);
}

static void test_http_jwt_exchange(void **state)
{
	(void)state;
	struct auth *a = sa_auth("http-sa.json", key_a, "a@p.iam.gserviceaccount.com", pem_a, NULL);
	assert_int_equal(auth_refresh_count(a), 0); /* auth_new does not fetch */
	assert_int_equal(srv_token_requests(), 0);
	time_t t0 = time(NULL);
	hdr_is(a, "Authorization: Bearer ya29.tok-1");
	hdr_is(a, "Authorization: Bearer ya29.tok-1");
	assert_int_equal(srv_token_requests(), 1);
	assert_int_equal(auth_refresh_count(a), 1);

	char *as = last_assertion();
	cJSON *cl = jwt_claims_of(as, key_a);
	assert_string_equal(jstr(cl, "iss"), "a@p.iam.gserviceaccount.com");
	assert_string_equal(jstr(cl, "aud"), srv_token_uri());
	assert_string_equal(jstr(cl, "scope"), "https://www.googleapis.com/auth/devstorage.read_write");
	double iat = cJSON_GetObjectItem(cl, "iat")->valuedouble;
	double exp = cJSON_GetObjectItem(cl, "exp")->valuedouble;
	assert_true(iat >= (double)t0 - 1 && iat <= (double)time(NULL) + 1);
	assert_true(exp == iat + 3600);
	cJSON_Delete(cl);
	free(as);
	auth_free(a);

	/* a configured scope goes into the claims */
	a = sa_auth("http-sa.json", key_a, "a@p", pem_a,
		    "https://www.googleapis.com/auth/devstorage.read_only");
	hdr_is(a, "Authorization: Bearer ya29.tok-2");
	as = last_assertion();
	cl = jwt_claims_of(as, key_a);
	assert_string_equal(jstr(cl, "scope"), "https://www.googleapis.com/auth/devstorage.read_only");
	cJSON_Delete(cl);
	free(as);
	auth_free(a);
}

struct hgetter {
	struct auth *a;
	pthread_barrier_t *bar;
	char hdr[256];
	int rc;
};

static void *hgetter_main(void *arg)
{
	struct hgetter *g = arg;
	char err[256];
	pthread_barrier_wait(g->bar);
	g->rc = auth_header(g->a, g->hdr, sizeof(g->hdr), err, sizeof(err));
	return NULL;
}

/* 16 threads at the moment of expiry cause exactly one token request. */
static void test_http_16_threads_one_refresh(void **state)
{
	(void)state;
	S.expires_in = 1;          /* lifetime 1 s, margin 250 ms */
	S.delay_ms = 200;          /* the refresh takes a while: the threads overlap it */
	int base = srv_token_requests();
	struct auth *a = sa_auth("http-16.json", key_a, "a@p", pem_a, NULL);
	char want[64];
	snprintf(want, sizeof(want), "Authorization: Bearer ya29.tok-%d", base + 1);
	hdr_is(a, want);
	token_sleep_ms(1300);      /* expired */
	enum { N = 16 };
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, N);
	struct hgetter g[N];
	pthread_t th[N];
	for (int i = 0; i < N; i++) {
		g[i] = (struct hgetter){.a = a, .bar = &bar};
		pthread_create(&th[i], NULL, hgetter_main, &g[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	assert_int_equal(srv_token_requests(), base + 2);
	assert_int_equal(auth_refresh_count(a), 2);
	snprintf(want, sizeof(want), "Authorization: Bearer ya29.tok-%d", base + 2);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].rc, 0);
		assert_string_equal(g[i].hdr, want);
	}
	S.expires_in = 3600;
	S.delay_ms = 0;
	auth_free(a);
}

/* A 401 invalidates that token once; a stale 401 does nothing. */
static void test_http_401_invalidate(void **state)
{
	(void)state;
	int base = srv_token_requests();
	struct auth *a = sa_auth("http-401.json", key_a, "a@p", pem_a, NULL);
	char first[256], second[256], err[256];
	assert_int_equal(auth_header(a, first, sizeof(first), err, sizeof(err)), 0);
	auth_invalidate(a, first);
	assert_int_equal(auth_header(a, second, sizeof(second), err, sizeof(err)), 0);
	assert_string_not_equal(first, second);
	assert_int_equal(srv_token_requests(), base + 2);
	auth_invalidate(a, first);            /* another thread's late 401 */
	hdr_is(a, second);
	assert_int_equal(srv_token_requests(), base + 2);
	assert_int_equal(auth_refresh_count(a), 2);
	auth_free(a);
}

/* An answer with expires_in <= 0 gives a token that is used (not fetched
 * again on every call), and a note naming the endpoint and the value. */
static void test_http_expired_answer(void **state)
{
	(void)state;
	S.expires_in = -30;
	int base = srv_token_requests();
	struct auth *a = sa_auth("http-expired.json", key_a, "a@p", pem_a, NULL);
	char want[64], note[256];
	snprintf(want, sizeof(want), "Authorization: Bearer ya29.tok-%d", base + 1);
	for (int i = 0; i < 5; i++)
		hdr_is(a, want);
	assert_int_equal(srv_token_requests(), base + 1);
	auth_refusal_note(a, note, sizeof(note));
	assert_non_null(strstr(note, "expires_in=-30"));
	assert_non_null(strstr(note, srv_token_uri()));
	auth_free(a);
	S.expires_in = 3600;
}

/* One exchange against a canned answer, with a fresh auth each time. */
static int one_exchange(int status, const char *body, char *err, size_t errlen, int *requests)
{
	srv_answer(status, body);
	struct auth *a = sa_auth("http-err.json", key_a, "a@p", pem_a, NULL);
	int base = srv_token_requests();
	char hdr[256];
	int rc = auth_header(a, hdr, sizeof(hdr), err, errlen);
	*requests = srv_token_requests() - base;
	if (rc)
		assert_int_equal(auth_refresh_count(a), 0);
	auth_free(a);
	srv_answer(0, NULL);
	return rc;
}

static void test_http_errors(void **state)
{
	(void)state;
	char err[512];
	int n;

	assert_int_equal(one_exchange(400, "{\"error\":\"invalid_grant\",\"error_description\":"
				      "\"Invalid JWT Signature.\"}", err, sizeof(err), &n), -EACCES);
	assert_non_null(strstr(err, "invalid_grant: Invalid JWT Signature."));
	assert_non_null(strstr(err, "HTTP 400"));
	assert_non_null(strstr(err, srv_token_uri()));
	assert_int_equal(n, 1); /* refused: no retry */

	assert_int_equal(one_exchange(401, "{\"error\":\"unauthorized_client\"}", err, sizeof(err), &n),
			 -EACCES);
	assert_non_null(strstr(err, "unauthorized_client"));
	assert_int_equal(one_exchange(403, "{\"error\":\"access_denied\"}", err, sizeof(err), &n),
			 -EACCES);
	assert_non_null(strstr(err, "access_denied"));

	assert_int_equal(one_exchange(503, "backend unavailable", err, sizeof(err), &n), -EIO);
	assert_non_null(strstr(err, "HTTP 503"));
	assert_non_null(strstr(err, "after retries"));
	assert_int_equal(n, TOKEN_ATTEMPTS); /* retried */

	assert_int_equal(one_exchange(404, "no such path", err, sizeof(err), &n), -EIO);
	assert_int_equal(n, 1);

	assert_int_equal(one_exchange(200, "<html>not json</html>", err, sizeof(err), &n), -EIO);
	assert_non_null(strstr(err, "not a JSON object"));
	assert_int_equal(n, 1);

	assert_int_equal(one_exchange(200, "{\"access_token\":\"bad token\\r\\nX-Injected: 1\","
				      "\"expires_in\":3600}", err, sizeof(err), &n), -EIO);
	assert_non_null(strstr(err, "not allowed in a header"));

	/* plain success */
	assert_int_equal(one_exchange(0, NULL, err, sizeof(err), &n), 0);
	assert_int_equal(n, 1);

	/* a transient 503, then success: the retry gets the token */
	pthread_mutex_lock(&S.mu);
	S.transient = TOKEN_ATTEMPTS - 1;
	pthread_mutex_unlock(&S.mu);
	assert_int_equal(one_exchange(503, "{\"error\":\"internal_failure\"}", err, sizeof(err), &n), 0);
	assert_int_equal(n, TOKEN_ATTEMPTS);

	/* nobody listening: -EIO naming the endpoint */
	char *j = sa_json("service_account", "a@p", pem_a, "http://127.0.0.1:1/token");
	write_file(tpath("http-dead.json"), j);
	free(j);
	struct auth_config cfg = {.key_file = tpath("http-dead.json")};
	char hdr[256];
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "http://127.0.0.1:1/token"));
	assert_non_null(strstr(err, "no answer"));
	/* the failure is shared for a moment rather than retried by every caller */
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), -EIO);
	assert_int_equal(auth_refresh_count(a), 0);
	auth_free(a);
}

/* Key rotation: a Kubernetes-style ..data symlink swap is picked up at
 * the next refresh; a broken replacement keeps the previous key. */
static void test_http_key_rotation(void **state)
{
	(void)state;
	char *ja = sa_json("service_account", "old@p", pem_a, srv_token_uri());
	char *jb = sa_json("service_account", "new@p", pem_b, srv_token_uri());
	mkdir(tpath("rot"), 0700);
	mkdir(tpath("rot/v1"), 0700);
	mkdir(tpath("rot/v2"), 0700);
	mkdir(tpath("rot/v3"), 0700);
	write_file(tpath("rot/v1/key.json"), ja);
	write_file(tpath("rot/v2/key.json"), jb);
	write_file(tpath("rot/v3/key.json"), "{\"type\": \"service_account\", \"private_key\": ");
	unlink(tpath("rot/..data"));
	assert_int_equal(symlink("v1", tpath("rot/..data")), 0);
	unlink(tpath("rot/key.json"));
	assert_int_equal(symlink("..data/key.json", tpath("rot/key.json")), 0);

	struct auth_config cfg = {.key_file = tpath("rot/key.json")};
	char err[512], hdr[256];
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	char *as = last_assertion();
	cJSON *cl = jwt_claims_of(as, key_a);
	assert_string_equal(jstr(cl, "iss"), "old@p");
	cJSON_Delete(cl);
	free(as);

	/* swap ..data atomically, as the kubelet does */
	assert_int_equal(symlink("v2", tpath("rot/..data_tmp")), 0);
	assert_int_equal(rename(tpath("rot/..data_tmp"), tpath("rot/..data")), 0);
	auth_invalidate(a, hdr);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	as = last_assertion();
	cl = jwt_claims_of(as, key_b); /* signed by the new key */
	assert_string_equal(jstr(cl, "iss"), "new@p");
	cJSON_Delete(cl);
	free(as);

	/* a broken replacement: one error line, the refresh uses the old key
	 * (a token refused right after it replaced a refused one is replaced
	 * once TOKEN_FAIL_HOLD_MS has passed) */
	assert_int_equal(symlink("v3", tpath("rot/..data_tmp")), 0);
	assert_int_equal(rename(tpath("rot/..data_tmp"), tpath("rot/..data")), 0);
	auth_invalidate(a, hdr);
	token_sleep_ms(TOKEN_FAIL_HOLD_MS);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	as = last_assertion();
	cl = jwt_claims_of(as, key_b);
	assert_string_equal(jstr(cl, "iss"), "new@p");
	cJSON_Delete(cl);
	free(as);
	assert_int_equal(auth_refresh_count(a), 3);
	auth_free(a);
	free(ja);
	free(jb);
}

static void test_http_authorized_user(void **state)
{
	(void)state;
	char *j = au_json("1//refresh+tok", srv_token_uri());
	mkdir(tpath("gcloud-au"), 0700);
	write_file(tpath("gcloud-au/application_default_credentials.json"), j);
	free(j);
	setenv("CLOUDSDK_CONFIG", tpath("gcloud-au"), 1);
	char err[512], hdr[256];
	struct auth_config cfg = {0};
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	unsetenv("CLOUDSDK_CONFIG");
	assert_non_null(a);
	assert_non_null(strstr(auth_source(a), "authorized user"));
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	assert_non_null(strstr(hdr, "Authorization: Bearer ya29.tok-"));
	pthread_mutex_lock(&S.mu);
	char *body = strstr(S.last, "\r\n\r\n") + 4;
	assert_string_equal(body, "grant_type=refresh_token&client_id=cid.apps.googleusercontent.com"
				  "&client_secret=s3cr3t%26%3Dx&refresh_token=1%2F%2Frefresh%2Btok");
	assert_true(strncmp(S.last, "POST /token ", 12) == 0);
	pthread_mutex_unlock(&S.mu);
	auth_free(a);
}

static void test_http_metadata(void **state)
{
	(void)state;
	char host[64], err[512], hdr[256];
	snprintf(host, sizeof(host), "127.0.0.1:%d", S.port);
	setenv("GCE_METADATA_HOST", host, 1);
	S.need_flavor = 1;
	struct auth_config cfg = {0};
	struct auth *a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_non_null(strstr(auth_source(a), "metadata server at 127.0.0.1"));
	assert_non_null(strstr(auth_source(a), "GCE_METADATA_HOST"));
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	assert_non_null(strstr(hdr, "Authorization: Bearer ya29.tok-"));
	pthread_mutex_lock(&S.mu);
	assert_true(strncmp(S.last, "GET /computeMetadata/v1/instance/service-accounts/default/token "
			    "HTTP/1.1\r\n", 72) == 0);
	pthread_mutex_unlock(&S.mu);
	assert_int_equal(auth_refresh_count(a), 1);
	auth_free(a);

	/* GCE_METADATA_ROOT (older name), with a scope */
	unsetenv("GCE_METADATA_HOST");
	setenv("GCE_METADATA_ROOT", host, 1);
	cfg.scope = "https://www.googleapis.com/auth/devstorage.full_control";
	a = new_auth(&cfg, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(auth_header(a, hdr, sizeof(hdr), err, sizeof(err)), 0);
	pthread_mutex_lock(&S.mu);
	assert_non_null(strstr(S.last, "/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2F"
				       "devstorage.full_control HTTP/1.1"));
	pthread_mutex_unlock(&S.mu);
	auth_free(a);
	unsetenv("GCE_METADATA_ROOT");
	S.need_flavor = 0;
}

/* ------------------------------------------------------------------ */

int main(void)
{
	if (auth_test_begin() != 0)
		return 1;
	key_a = gen_key(EVP_PKEY_RSA, 2048);
	key_b = gen_key(EVP_PKEY_RSA, 2048);
	pem_a = to_pem(key_a);
	pem_b = to_pem(key_b);

	const struct CMUnitTest answers[] = {
		cmocka_unit_test(test_token_error_text),
	};
	const struct CMUnitTest http[] = {
		cmocka_unit_test(test_http_jwt_exchange),
		cmocka_unit_test(test_http_16_threads_one_refresh),
		cmocka_unit_test(test_http_401_invalidate),
		cmocka_unit_test(test_http_expired_answer),
		cmocka_unit_test(test_http_errors),
		cmocka_unit_test(test_http_key_rotation),
		cmocka_unit_test(test_http_authorized_user),
		cmocka_unit_test(test_http_metadata),
	};
	int rc = cmocka_run_group_tests_name("auth: token endpoint answers", answers, NULL, NULL);
	rc |= cmocka_run_group_tests_name("auth: token endpoint over HTTP", http, srv_start, srv_stop);

	EVP_PKEY_free(key_a);
	EVP_PKEY_free(key_b);
	free(pem_a);
	free(pem_b);
	auth_test_end();
	return rc;
}
