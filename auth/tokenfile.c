/*
 * tokenfile: -o token_file=PATH, a file holding a raw access token that
 * something else keeps fresh. Loading strips trailing whitespace and refuses
 * an empty file or one whose text could not go into a header line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth/exchange.h"
#include "auth/source.h"

int auth_token_file_load(const char *path, const char *origin, struct secret *tok,
			 struct file_ident *id, char *err, size_t errlen)
{
	struct buf text = BUF_INIT;
	int rc = auth_file_read(path, origin, &text, id, err, errlen);
	if (rc)
		goto out;
	size_t len = text.len;
	while (len && (text.data[len - 1] == ' ' || text.data[len - 1] == '\t' ||
		       text.data[len - 1] == '\r' || text.data[len - 1] == '\n'))
		len--;
	if (len == 0) {
		snprintf(err, errlen, "%s: empty, expected an access token", origin);
		rc = -EINVAL;
	} else if (!token_is_clean(text.data, len)) {
		snprintf(err, errlen, "%s: holds spaces or control characters, expected one raw "
			 "access token", origin);
		rc = -EINVAL;
	} else if (auth_secret_set(tok, text.data, len)) {
		snprintf(err, errlen, "%s: out of memory", origin);
		rc = -ENOMEM;
	}
out:
	buf_free_secret(&text);
	return rc;
}
