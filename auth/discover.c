/*
 * discover: choose the credentials source, first hit wins.
 *
 *  1. -o key_file=PATH (service-account or authorized_user JSON),
 *     or -o token_file=PATH (a raw access token kept fresh by someone else)
 *  2. a key path in GC_KEY_PATH, GOOGLE_KEY_PATH, GOOGLE_APPLICATION_CREDENTIALS
 *  3. the key JSON itself in GC_KEYFILE_DICT, GOOGLE_KEYFILE_DICT
 *  4. the default secret mount /plx-context/.gc/gc-secret.json
 *     (test hook: GCSMOUNT_DEFAULT_KEY_PATH replaces this path)
 *  5. gcloud's application-default credentials
 *     ($CLOUDSDK_CONFIG or ~/.config/gcloud, application_default_credentials.json)
 *  6. the metadata server (see metadata.c)
 * A variable or option that is set (non-empty) is used or fails: pointing
 * at nothing or holding broken JSON is an error naming it, never a
 * fall-through. The fixed paths of 4 and 5 are skipped when absent and are
 * errors when present but broken.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/metadata.h"
#include "auth/source.h"

static void describe_key(struct auth_src *s, const char *origin)
{
	char d[300];
	key_describe(&s->key, d, sizeof(d));
	snprintf(s->desc, sizeof(s->desc), "%s, key from %s", d, origin);
}

static int use_key_file(struct auth_src *s, const char *path, const char *origin,
			char *err, size_t errlen)
{
	int rc = key_load_file(path, origin, &s->key, &s->ident, err, errlen);
	if (rc)
		return rc;
	s->kind = AUTH_KEY;
	s->path = xstrdup(path);
	s->origin = xstrdup(origin);
	s->seen = s->ident;
	describe_key(s, origin);
	return 0;
}

static int use_token_file(struct auth_src *s, const char *path, char *err, size_t errlen)
{
	char origin[300];
	snprintf(origin, sizeof(origin), "token_file=%s", path);
	int rc = auth_token_file_load(path, origin, &s->file_token, &s->ident, err, errlen);
	if (rc)
		return rc;
	s->kind = AUTH_TOKEN_FILE;
	s->path = xstrdup(path);
	s->origin = xstrdup(origin);
	s->seen = s->ident;
	snprintf(s->desc, sizeof(s->desc), "access token from %s (re-read when the file changes)",
		 origin);
	return 0;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* $CLOUDSDK_CONFIG or ~/.config/gcloud, plus the ADC file name. */
static int adc_path(char *out, size_t outlen)
{
	const char *dir = env("CLOUDSDK_CONFIG");
	if (dir)
		return snprintf(out, outlen, "%s/application_default_credentials.json", dir) <
		       (int)outlen;
	const char *home = env("HOME");
	struct passwd pw, *res = NULL;
	char pwbuf[1024];
	if (!home && getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
		home = res->pw_dir;
	if (!home)
		return 0;
	return snprintf(out, outlen, "%s/.config/gcloud/application_default_credentials.json",
			home) < (int)outlen;
}

int auth_discover(const struct auth_config *cfg, struct auth_src *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->scope = cfg->scope && *cfg->scope ? xstrdup(cfg->scope) : NULL;
	char origin[4200];
	int rc;

	if (cfg->anonymous) {
		s->kind = AUTH_ANONYMOUS;
		snprintf(s->desc, sizeof(s->desc), "anonymous (no credentials, public objects only)");
		return 0;
	}
	/* 1. mount options */
	if (cfg->key_file && cfg->token_file) {
		snprintf(err, errlen, "key_file and token_file were both given: choose one");
		return -EINVAL;
	}
	if (cfg->key_file) {
		snprintf(origin, sizeof(origin), "key_file=%s", cfg->key_file);
		return use_key_file(s, cfg->key_file, origin, err, errlen);
	}
	if (cfg->token_file)
		return use_token_file(s, cfg->token_file, err, errlen);

	/* 2. key path variables */
	static const char *const path_vars[] = {"GC_KEY_PATH", "GOOGLE_KEY_PATH",
						"GOOGLE_APPLICATION_CREDENTIALS"};
	for (size_t i = 0; i < sizeof(path_vars) / sizeof(path_vars[0]); i++) {
		const char *v = env(path_vars[i]);
		if (v) {
			snprintf(origin, sizeof(origin), "%s=%s", path_vars[i], v);
			return use_key_file(s, v, origin, err, errlen);
		}
	}

	/* 3. key JSON variables */
	static const char *const dict_vars[] = {"GC_KEYFILE_DICT", "GOOGLE_KEYFILE_DICT"};
	for (size_t i = 0; i < sizeof(dict_vars) / sizeof(dict_vars[0]); i++) {
		const char *v = env(dict_vars[i]);
		if (!v)
			continue;
		rc = key_parse(v, strlen(v), dict_vars[i], &s->key, err, errlen);
		if (rc)
			return rc;
		s->kind = AUTH_KEY;
		s->origin = xstrdup(dict_vars[i]);
		describe_key(s, dict_vars[i]);
		return 0;
	}

	/* 4. the default secret mount */
	const char *def = env("GCSMOUNT_DEFAULT_KEY_PATH");
	if (!def)
		def = AUTH_DEFAULT_KEY_PATH;
	if (auth_file_exists(def)) {
		snprintf(origin, sizeof(origin), "default key file %s", def);
		return use_key_file(s, def, origin, err, errlen);
	}

	/* 5. gcloud application-default credentials */
	char adc[4096] = "";
	if (adc_path(adc, sizeof(adc)) && auth_file_exists(adc)) {
		snprintf(origin, sizeof(origin), "gcloud application-default credentials %s", adc);
		return use_key_file(s, adc, origin, err, errlen);
	}

	/* 6. the metadata server */
	char note[300];
	rc = auth_metadata_find(s->md_host, sizeof(s->md_host), note, sizeof(note), err, errlen);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		s->kind = AUTH_METADATA;
		s->origin = xstrdup("metadata server");
		snprintf(s->desc, sizeof(s->desc), "%s, default service account", note);
		return 0;
	}

	snprintf(err, errlen, "no credentials found; tried: -o key_file/token_file, GC_KEY_PATH, "
		 "GOOGLE_KEY_PATH, GOOGLE_APPLICATION_CREDENTIALS, GC_KEYFILE_DICT, "
		 "GOOGLE_KEYFILE_DICT (none set), %s (absent), %s (absent), %s; "
		 "use -o anonymous for a public bucket",
		 def, adc[0] ? adc : "gcloud application-default credentials (no HOME)", note);
	return -ENOENT;
}
