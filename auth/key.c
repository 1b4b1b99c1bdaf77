/*
 * key: parse a credentials JSON document into a struct key.
 *
 * Every check that can fail at mount time fails here, with one line naming
 * the source and the cause: not JSON, wrong "type", a missing field, a PEM
 * that OpenSSL cannot read, a key that is not RSA. Secret text (the PEM,
 * client_secret, refresh_token) is wiped from every intermediate copy,
 * including cJSON's strings, before they are freed.
 */
#include "auth/key.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "auth/file.h"
#include "common/buf.h"

/* Never prompt for a passphrase: an encrypted PEM simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag; (void)u;
	return -1;
}

/* Zero every string value in the tree before cJSON_Delete frees it. */
static void json_wipe(cJSON *node)
{
	for (; node; node = node->next) {
		if (cJSON_IsString(node) && node->valuestring)
			auth_secret_wipe(node->valuestring, strlen(node->valuestring));
		if (node->child)
			json_wipe(node->child);
	}
}

static const char *json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(v) && v->valuestring && v->valuestring[0] ? v->valuestring : NULL;
}

/* Copy at most max printable characters of s (for quoting a "type"). */
static void printable(char *out, size_t outlen, const char *s, size_t max)
{
	size_t i = 0;
	for (; s[i] && i < max && i + 1 < outlen; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
}

/* The PEM with escaped newlines (backslash-n) turned into real ones. */
static void pem_unescape(struct buf *out, const char *pem)
{
	size_t n = strlen(pem);
	buf_grow(out, n + 1);
	for (size_t i = 0; i < n; i++) {
		if (pem[i] == '\\' && pem[i + 1] == 'n') {
			buf_putc(out, '\n');
			i++;
		} else if (pem[i] == '\\' && pem[i + 1] == 'r') {
			i++;
		} else {
			buf_putc(out, pem[i]);
		}
	}
}

static int load_pem(const char *pem_text, const char *origin, EVP_PKEY **out,
		    char *err, size_t errlen)
{
	struct buf pem = BUF_INIT;
	pem_unescape(&pem, pem_text);
	ERR_clear_error();
	BIO *bio = BIO_new_mem_buf(pem.data, (int)pem.len);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	buf_free_secret(&pem);
	if (!pkey) {
		unsigned long e = ERR_peek_last_error();
		const char *why = e ? ERR_reason_error_string(e) : NULL;
		snprintf(err, errlen, "%s: private_key is not a PEM private key OpenSSL can read (%s)",
			 origin, why ? why : "unknown reason");
		ERR_clear_error();
		return -EINVAL;
	}
	int id = EVP_PKEY_base_id(pkey);
	if (id != EVP_PKEY_RSA) {
		const char *name = OBJ_nid2sn(id);
		snprintf(err, errlen, "%s: private_key is a%s %s key, not RSA (RS256 needs an RSA key)",
			 origin, name && strchr("AEIOU", name[0]) ? "n" : "", name ? name : "non-RSA");
		EVP_PKEY_free(pkey);
		return -EINVAL;
	}
	*out = pkey;
	return 0;
}

static int parse_service_account(const cJSON *root, const char *origin, struct key *k,
				 char *err, size_t errlen)
{
	const char *pem = json_str(root, "private_key");
	const char *email = json_str(root, "client_email");
	if (!pem) {
		snprintf(err, errlen, "%s: no \"private_key\" field (not a service-account key?)", origin);
		return -EINVAL;
	}
	if (!email) {
		snprintf(err, errlen, "%s: no \"client_email\" field (not a service-account key?)", origin);
		return -EINVAL;
	}
	int rc = load_pem(pem, origin, &k->pkey, err, errlen);
	if (rc)
		return rc;
	k->type = KEY_SERVICE_ACCOUNT;
	k->client_email = xstrdup(email);
	const char *kid = json_str(root, "private_key_id");
	k->private_key_id = kid ? xstrdup(kid) : NULL;
	return 0;
}

static int parse_authorized_user(const cJSON *root, const char *origin, struct key *k,
				 char *err, size_t errlen)
{
	static const char *const need[] = {"client_id", "client_secret", "refresh_token"};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!json_str(root, need[i])) {
			snprintf(err, errlen, "%s: authorized_user credentials without \"%s\"",
				 origin, need[i]);
			return -EINVAL;
		}
	const char *secret = json_str(root, "client_secret");
	const char *refresh = json_str(root, "refresh_token");
	if (auth_secret_set(&k->client_secret, secret, strlen(secret)) ||
	    auth_secret_set(&k->refresh_token, refresh, strlen(refresh))) {
		snprintf(err, errlen, "%s: out of memory", origin);
		return -ENOMEM;
	}
	k->type = KEY_AUTHORIZED_USER;
	k->client_id = xstrdup(json_str(root, "client_id"));
	return 0;
}

/* Which kind of document this is, from "type" (or the fields when absent). */
static int doc_type(const cJSON *root, const char *origin, enum key_type *t,
		    char *err, size_t errlen)
{
	const cJSON *tv = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (!tv) {
		*t = json_str(root, "refresh_token") && !json_str(root, "private_key")
			     ? KEY_AUTHORIZED_USER : KEY_SERVICE_ACCOUNT;
		return 0;
	}
	if (!cJSON_IsString(tv) || !tv->valuestring) {
		snprintf(err, errlen, "%s: \"type\" is not a string", origin);
		return -EINVAL;
	}
	if (strcmp(tv->valuestring, "service_account") == 0) {
		*t = KEY_SERVICE_ACCOUNT;
		return 0;
	}
	if (strcmp(tv->valuestring, "authorized_user") == 0) {
		*t = KEY_AUTHORIZED_USER;
		return 0;
	}
	if (strcmp(tv->valuestring, "external_account") == 0) {
		snprintf(err, errlen, "%s: credentials of type \"external_account\" (workload identity "
			 "federation) are not supported; use a service-account key or the metadata server",
			 origin);
		return -ENOTSUP;
	}
	char shown[48];
	printable(shown, sizeof(shown), tv->valuestring, 40);
	snprintf(err, errlen, "%s: unsupported credentials type \"%s\" (expected \"service_account\" "
		 "or \"authorized_user\")", origin, shown);
	return -EINVAL;
}

int key_parse(const char *json, size_t len, const char *origin, struct key *k,
	      char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!root) {
		/* Name the position, never the text around it (it may be key material). */
		size_t at = end && end >= json ? (size_t)(end - json) : 0;
		size_t blank = 0;
		while (blank < len && strchr(" \t\r\n", json[blank]) && json[blank])
			blank++;
		if (blank == len)
			snprintf(err, errlen, "%s: empty, expected a JSON credentials document", origin);
		else
			snprintf(err, errlen, "%s: not valid JSON (parse error at byte %zu)", origin, at);
		return -EINVAL;
	}
	int rc;
	enum key_type t;
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "%s: JSON is not an object, expected a credentials document", origin);
		rc = -EINVAL;
		goto out;
	}
	rc = doc_type(root, origin, &t, err, errlen);
	if (rc)
		goto out;
	const cJSON *uri = cJSON_GetObjectItemCaseSensitive(root, "token_uri");
	if (uri && (!cJSON_IsString(uri) || strncmp(uri->valuestring, "http", 4) != 0)) {
		snprintf(err, errlen, "%s: \"token_uri\" is not an http(s) URL", origin);
		rc = -EINVAL;
		goto out;
	}
	rc = t == KEY_SERVICE_ACCOUNT ? parse_service_account(root, origin, k, err, errlen)
				      : parse_authorized_user(root, origin, k, err, errlen);
	if (rc == 0)
		k->token_uri = xstrdup(uri ? uri->valuestring : KEY_DEFAULT_TOKEN_URI);
out:
	json_wipe(root);
	cJSON_Delete(root);
	if (rc)
		key_free(k);
	return rc;
}

int key_load_file(const char *path, const char *origin, struct key *k,
		  struct file_ident *id, char *err, size_t errlen)
{
	struct buf text = BUF_INIT;
	memset(k, 0, sizeof(*k));
	int rc = auth_file_read(path, origin, &text, id, err, errlen);
	if (rc == 0)
		rc = key_parse(text.data ? text.data : "", text.len, origin, k, err, errlen);
	buf_free_secret(&text);
	return rc;
}

void key_describe(const struct key *k, char *out, size_t outlen)
{
	if (k->type == KEY_SERVICE_ACCOUNT)
		snprintf(out, outlen, "service account %s", k->client_email);
	else
		snprintf(out, outlen, "authorized user (refresh token of gcloud client %s)", k->client_id);
}

void key_free(struct key *k)
{
	EVP_PKEY_free(k->pkey);
	free(k->token_uri);
	free(k->client_email);
	free(k->private_key_id);
	free(k->client_id);
	auth_secret_clear(&k->client_secret);
	auth_secret_clear(&k->refresh_token);
	memset(k, 0, sizeof(*k));
}
