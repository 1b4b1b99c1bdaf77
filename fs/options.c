/*
 * options: parsing the command line and -o options. See options.h.
 */
#include "fs/options.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hostport.h"

void opts_defaults(struct mount_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->uid = getuid();
	o->gid = getgid();
	o->file_mode = 0644;
	o->dir_mode = 0755;
	o->chunk_size = 16u << 20;
	o->write_buffer = 256u << 20;
	o->read_ahead = 64u << 20;
	o->stat_ttl = 60;
	o->type_ttl = 60;
	o->negative_ttl = 5;
	o->retry_deadline = 120;
	o->shutdown_timeout = 25;
	o->publish_interval = 10;
	o->progress = -1;
}

void opts_free(struct mount_opts *o)
{
	free(o->bucket);
	free(o->prefix);
	free(o->mountpoint);
	free(o->endpoint);
	free(o->key_file);
	free(o->token_file);
	free(o->spool_dir);
	free(o->metrics);
	buf_free(&o->fuse_opts);
	memset(o, 0, sizeof(*o));
}

int opts_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end == 'i' && shift)
		end++;
	if ((*end == 'b' || *end == 'B') && shift)
		end++;
	if (*end)
		return -EINVAL;
	if (shift && n > (ULLONG_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)n << shift;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	if (!s || ((*s < '0' || *s > '9') && *s != '.'))
		return -EINVAL;
	errno = 0;
	double d = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(d) || d < 0 || d > 1e9)
		return -EINVAL;
	*out = d;
	return 0;
}

static int parse_uint(const char *s, int base, unsigned long max, unsigned long *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long n = strtoul(s, &end, base);
	if (errno || end == s || *end || n > max)
		return -EINVAL;
	*out = n;
	return 0;
}

int opts_parse_source(const char *src, char **bucket, char **prefix, char *err, size_t errlen)
{
	const char *s = src;
	if (strncmp(s, "gs://", 5) == 0)
		s += 5;
	const char *slash = strchr(s, '/');
	size_t blen = slash ? (size_t)(slash - s) : strlen(s);
	if (blen < 3 || blen > 222) {
		snprintf(err, errlen, "'%s': not a bucket name (gs://BUCKET[/PREFIX])", src);
		return -EINVAL;
	}
	for (size_t i = 0; i < blen; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.')) {
			snprintf(err, errlen, "'%.*s': bucket names hold only a-z, 0-9, '-', '_' and '.'",
				 (int)blen, s);
			return -EINVAL;
		}
	}
	/* GCS's rules: a letter or digit at each end, and names over 63
	 * characters only as dotted names of parts up to 63. */
	const char *b_end = s + blen;
	int edges_ok = isalnum((unsigned char)s[0]) && isalnum((unsigned char)b_end[-1]);
	int parts_ok = 1;
	for (const char *q = s; q < b_end && parts_ok;) {
		const char *dot = memchr(q, '.', (size_t)(b_end - q));
		size_t n = (size_t)((dot ? dot : b_end) - q);
		parts_ok = n >= 1 && n <= 63;
		q = dot ? dot + 1 : b_end;
	}
	if (!edges_ok || !parts_ok) {
		snprintf(err, errlen, "'%.*s': not a bucket name (a letter or digit at each end; "
			 "at most 63 characters between dots)", (int)blen, s);
		return -EINVAL;
	}
	const char *p = slash ? slash + 1 : "";
	size_t plen = strlen(p);
	while (plen && p[plen - 1] == '/')
		plen--;
	/* Each component of the prefix must be one a directory could show. */
	for (const char *q = p; q < p + plen;) {
		const char *sl = memchr(q, '/', (size_t)(p + plen - q));
		size_t n = (size_t)((sl ? sl : p + plen) - q);
		if (n == 0 || (n == 1 && q[0] == '.') || (n == 2 && q[0] == '.' && q[1] == '.')) {
			snprintf(err, errlen, "'%s': an empty, '.' or '..' component in the prefix",
				 src);
			return -EINVAL;
		}
		q = sl ? sl + 1 : p + plen;
	}
	*bucket = xstrndup(s, blen);
	*prefix = xstrndup(p, plen);
	return 0;
}

/* libfuse's own mount options, passed through to it. */
static int is_fuse_opt(const char *k)
{
	static const char *const names[] = {
		"allow_other", "allow_root", "default_permissions", "auto_unmount", "fsname",
		"subtype", "max_read", "ro", "rw", "dev", "nodev", "suid", "nosuid", "exec",
		"noexec", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
		"strictatime", "nostrictatime", "lazytime", "nolazytime", "sync", "async",
		"dirsync", NULL};
	for (int i = 0; names[i]; i++)
		if (strcmp(k, names[i]) == 0)
			return 1;
	return 0;
}

/* What mount(8) and fstab add, meaningless to us: accepted and dropped. */
static int is_ignored_opt(const char *k)
{
	static const char *const names[] = {"_netdev", "nofail", "auto", "noauto", "user",
					    "nouser", "users", "defaults", "owner", "group",
					    "comment", "loop", NULL};
	for (int i = 0; names[i]; i++)
		if (strcmp(k, names[i]) == 0)
			return 1;
	return strncmp(k, "x-", 2) == 0;
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = xstrdup(v);
}

static int one_opt(struct mount_opts *o, const char *opt, char *err, size_t errlen)
{
	char key[64];
	const char *eq = strchr(opt, '=');
	size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
	const char *v = eq ? eq + 1 : NULL;
	if (klen == 0)
		return 0; /* ",," */
	if (klen >= sizeof(key)) {
		snprintf(err, errlen, "unknown option '%.40s...'", opt);
		return -EINVAL;
	}
	memcpy(key, opt, klen);
	key[klen] = '\0';
	unsigned long n;
	uint64_t sz;
	double d;
	int bad = 0;

#define NEED_VALUE() do { if (!v || !*v) { bad = 1; break; } } while (0)
	if (strcmp(key, "endpoint") == 0) {
		NEED_VALUE();
		if (!bad && strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) {
			snprintf(err, errlen, "option endpoint=%s: expected an http:// or https:// URL", v);
			return -EINVAL;
		}
		if (!bad) set_str(&o->endpoint, v);
	} else if (strcmp(key, "anonymous") == 0 && !v) {
		o->anonymous = 1;
	} else if (strcmp(key, "key_file") == 0) {
		NEED_VALUE(); if (!bad) set_str(&o->key_file, v);
	} else if (strcmp(key, "token_file") == 0) {
		NEED_VALUE(); if (!bad) set_str(&o->token_file, v);
	} else if (strcmp(key, "spool_dir") == 0) {
		NEED_VALUE(); if (!bad) set_str(&o->spool_dir, v);
	} else if (strcmp(key, "metrics") == 0) {
		NEED_VALUE();
		char host[256], port[8];
		if (!bad && hostport_split(v, host, sizeof(host), port, sizeof(port), err,
					   errlen) < 0)
			return -EINVAL; /* a usage error, told before any mount is tried */
		if (!bad) set_str(&o->metrics, v);
	} else if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0) {
		bad = parse_uint(v, 10, 0xFFFFFFFEul, &n) < 0;
		if (!bad && key[0] == 'u') o->uid = (uid_t)n;
		else if (!bad) o->gid = (gid_t)n;
	} else if (strcmp(key, "file_mode") == 0 || strcmp(key, "dir_mode") == 0) {
		bad = parse_uint(v, 8, 07777, &n) < 0;
		if (!bad && key[0] == 'f') o->file_mode = (mode_t)n;
		else if (!bad) o->dir_mode = (mode_t)n;
	} else if (strcmp(key, "debug") == 0 && !v) {
		o->debug = 1;
	} else if ((strcmp(key, "progress") == 0 || strcmp(key, "noprogress") == 0) && !v) {
		o->progress = key[0] == 'p';
	} else if (strcmp(key, "chunk_size") == 0) {
		bad = opts_parse_size(v, &sz) < 0;
		if (!bad && (sz == 0 || sz % (256 * 1024) || sz > (1ull << 30))) {
			snprintf(err, errlen, "option chunk_size=%s: must be a multiple of 256K, at most 1G", v);
			return -EINVAL;
		}
		if (!bad) o->chunk_size = sz;
	} else if (strcmp(key, "write_buffer") == 0 || strcmp(key, "read_ahead") == 0) {
		bad = opts_parse_size(v, &sz) < 0 || sz == 0;
		if (!bad && key[0] == 'w') o->write_buffer = sz;
		else if (!bad) o->read_ahead = sz;
	} else if (strcmp(key, "stat_ttl") == 0 || strcmp(key, "type_ttl") == 0 ||
		   strcmp(key, "negative_ttl") == 0 || strcmp(key, "retry_deadline") == 0 ||
		   strcmp(key, "shutdown_timeout") == 0 || strcmp(key, "publish_interval") == 0) {
		bad = parse_seconds(v, &d) < 0;
		if (!bad) {
			double *dst = key[0] == 's' && key[1] == 't' ? &o->stat_ttl
				    : key[0] == 't' ? &o->type_ttl
				    : key[0] == 'n' ? &o->negative_ttl
				    : key[0] == 'r' ? &o->retry_deadline
				    : key[0] == 's' ? &o->shutdown_timeout
				    : &o->publish_interval;
			*dst = d;
		}
	} else if (is_fuse_opt(key)) {
		if (o->fuse_opts.len)
			buf_putc(&o->fuse_opts, ',');
		buf_puts(&o->fuse_opts, opt);
	} else if (is_ignored_opt(key)) {
		/* mount(8) and fstab vocabulary */
	} else {
		snprintf(err, errlen, "unknown option '%s' (see gcsmount --help)", opt);
		return -EINVAL;
	}
#undef NEED_VALUE
	if (bad) {
		snprintf(err, errlen, "option '%s': %s", opt, v && *v ? "malformed value" : "needs a value");
		return -EINVAL;
	}
	return 0;
}

static int opt_list(struct mount_opts *o, const char *list, char *err, size_t errlen)
{
	char *copy = xstrdup(list), *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save))
		rc = one_opt(o, t, err, errlen);
	free(copy);
	return rc;
}

int opts_parse(int argc, char **argv, struct mount_opts *o, char *err, size_t errlen)
{
	const char *pos[2] = {NULL, NULL};
	int npos = 0, rc;
	err[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-f") == 0 || strcmp(a, "--foreground") == 0) {
			o->foreground = 1;
		} else if (strcmp(a, "-d") == 0) {
			o->foreground = 1;
			o->debug = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			o->show_help = 1;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			o->show_version = 1;
		} else if (strcmp(a, "-o") == 0) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "-o needs an option list");
				return -EINVAL;
			}
			if ((rc = opt_list(o, argv[++i], err, errlen)) < 0)
				return rc;
		} else if (strncmp(a, "-o", 2) == 0) {
			if ((rc = opt_list(o, a + 2, err, errlen)) < 0)
				return rc;
		} else if (a[0] == '-' && a[1]) {
			snprintf(err, errlen, "unknown flag '%s' (see gcsmount --help)", a);
			return -EINVAL;
		} else if (npos < 2) {
			pos[npos++] = a;
		} else {
			snprintf(err, errlen, "unexpected argument '%s'", a);
			return -EINVAL;
		}
	}
	if (o->show_help || o->show_version)
		return 0;
	if (npos < 2) {
		snprintf(err, errlen, "usage: gcsmount [-f] [-o OPT[,OPT...]] gs://BUCKET[/PREFIX] MOUNTPOINT");
		return -EINVAL;
	}
	if ((rc = opts_parse_source(pos[0], &o->bucket, &o->prefix, err, errlen)) < 0)
		return rc;
	o->mountpoint = xstrdup(pos[1]);
	if (o->anonymous && (o->key_file || o->token_file)) {
		snprintf(err, errlen, "option anonymous cannot be combined with key_file or token_file");
		return -EINVAL;
	}
	if (o->key_file && o->token_file) {
		snprintf(err, errlen, "options key_file and token_file exclude each other");
		return -EINVAL;
	}
	return 0;
}
