/*
 * source: where tokens come from once discovery has chosen (struct
 * auth_src), and the fetch function the token cache calls for each kind.
 */
#ifndef GCSMOUNT_AUTH_SOURCE_H
#define GCSMOUNT_AUTH_SOURCE_H

#include <stddef.h>

#include "auth/auth.h"
#include "auth/file.h"
#include "auth/key.h"
#include "auth/secret.h"
#include "common/buf.h"

#define AUTH_DEFAULT_SCOPE "https://www.googleapis.com/auth/devstorage.read_write"
#define AUTH_DEFAULT_KEY_PATH "/plx-context/.gc/gc-secret.json"
#define TOKEN_FILE_RECHECK_S 5   /* a token file is stat()ed this often */

enum auth_kind { AUTH_ANONYMOUS, AUTH_KEY, AUTH_TOKEN_FILE, AUTH_METADATA };

struct auth_src {
	enum auth_kind kind;
	char desc[512];            /* for the log: never a secret */
	char *origin;              /* "GC_KEY_PATH=/x.json": names the source in errors */
	char *path;                /* key or token file; NULL when the key came from a variable */
	struct file_ident ident;   /* identity of the file content we hold */
	struct file_ident seen;    /* last identity examined (a broken replacement is reported once) */
	char *scope;               /* JWT scope / metadata scopes (NULL: instance default) */
	struct key key;            /* AUTH_KEY */
	struct secret file_token;  /* AUTH_TOKEN_FILE */
	int file_token_used;       /* the loaded file token has been handed out */
	char md_host[256];         /* AUTH_METADATA */
	unsigned long fetches;     /* tokens obtained (atomic) */
};

/*
 * Discovery (discover.c). Fills s, or returns a negative errno with one line
 * in err naming the variable/file and the cause, or every place tried.
 */
int auth_discover(const struct auth_config *cfg, struct auth_src *s, char *err, size_t errlen);

/* Load a token file: trailing whitespace stripped, non-empty, header-safe. */
int auth_token_file_load(const char *path, const char *origin, struct secret *tok,
			 struct file_ident *id, char *err, size_t errlen);

/* The token_fetch_fn for every kind (refresh.c); ctx is a struct auth_src. */
int auth_src_fetch(void *ctx, struct buf *token, long *lifetime_s, char *err, size_t errlen);

/* If the key file changed on disk, re-read it; keep the old key if the new
 * one is broken (one error line). Called before each key-based refresh. */
void auth_src_rotate_key(struct auth_src *s);

void auth_src_free(struct auth_src *s);

#endif
