/*
 * spool: entries on disk and their journals. See spool.h.
 */
#include "fs/spool.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "common/log.h"

int spool_open(struct spool *s, const char *root, const char *key)
{
	memset(s, 0, sizeof(*s));
	uint32_t h1 = crc32c_update(0, key, strlen(key));
	uint32_t h2 = crc32c_update(h1 ^ 0x5bd1e995u, key, strlen(key));
	struct buf b = BUF_INIT;
	buf_printf(&b, "%s/%08x%08x", root, h1, h2);
	if (mkdir(b.data, 0700) < 0 && errno != EEXIST) {
		int rc = -errno;
		buf_free(&b);
		return rc;
	}
	if (chmod(b.data, 0700) < 0) {
		int rc = -errno;
		buf_free(&b);
		return rc;
	}
	s->dir = buf_detach(&b);
	return 0;
}

void spool_close(struct spool *s)
{
	free(s->dir);
	s->dir = NULL;
}

static void entry_path(const struct spool *s, const char *id, const char *ext, char *out,
		       size_t len)
{
	snprintf(out, len, "%s/%s.%s", s->dir, id, ext);
}

int spool_create(struct spool *s, char *id, size_t idlen, int *fd)
{
	char path[4096];
	for (int tries = 0; tries < 100; tries++) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		unsigned long n = __atomic_add_fetch(&s->counter, 1, __ATOMIC_RELAXED);
		snprintf(id, idlen, "%lx-%lx-%d-%lu", (unsigned long)ts.tv_sec,
			 (unsigned long)ts.tv_nsec, (int)getpid(), n);
		entry_path(s, id, "data", path, sizeof(path));
		*fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (*fd >= 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

char *spool_state_to_json(const struct spool_state *st)
{
	cJSON *j = cJSON_CreateObject();
	char num[32];
	cJSON_AddStringToObject(j, "object", st->object ? st->object : "");
	snprintf(num, sizeof(num), "%" PRId64, st->base_gen);
	cJSON_AddStringToObject(j, "base_gen", num);
	snprintf(num, sizeof(num), "%" PRIu64, st->base_size);
	cJSON_AddStringToObject(j, "base_size", num);
	cJSON_AddBoolToObject(j, "staged", st->staged);
	if (st->session) {
		cJSON_AddStringToObject(j, "session", st->session);
		cJSON_AddStringToObject(j, "session_object",
					st->session_object ? st->session_object : "");
	}
	snprintf(num, sizeof(num), "%" PRIu64, st->sent);
	cJSON_AddStringToObject(j, "sent", num);
	cJSON_AddBoolToObject(j, "closing", st->closing);
	cJSON_AddBoolToObject(j, "symlink", st->symlink);
	if (st->mtime_sec || st->mtime_nsec) {
		snprintf(num, sizeof(num), "%" PRId64, st->mtime_sec);
		cJSON_AddStringToObject(j, "mtime_sec", num);
		cJSON_AddNumberToObject(j, "mtime_nsec", (double)st->mtime_nsec);
	}
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

static int get_num(const cJSON *j, const char *key, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		return -EINVAL;
	char *end;
	errno = 0;
	long long n = strtoll(v->valuestring, &end, 10);
	if (errno || end == v->valuestring || *end || n < 0)
		return -EINVAL;
	*out = n;
	return 0;
}

int spool_state_from_json(const char *json, size_t len, struct spool_state *st)
{
	memset(st, 0, sizeof(*st));
	cJSON *j = cJSON_ParseWithLength(json, len);
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(j, "object");
	if (!cJSON_IsObject(j) || !cJSON_IsString(obj) || !obj->valuestring[0]) {
		cJSON_Delete(j);
		return -EINVAL;
	}
	int64_t base_gen = 0, base_size = 0, sent = 0, msec = 0;
	int rc = get_num(j, "base_gen", &base_gen);
	if (rc == 0) rc = get_num(j, "base_size", &base_size);
	if (rc == 0) rc = get_num(j, "sent", &sent);
	if (rc == 0) rc = get_num(j, "mtime_sec", &msec);
	const cJSON *sess = cJSON_GetObjectItemCaseSensitive(j, "session");
	const cJSON *sobj = cJSON_GetObjectItemCaseSensitive(j, "session_object");
	if (rc == 0 && sess && (!cJSON_IsString(sess) || !cJSON_IsString(sobj)))
		rc = -EINVAL;
	if (rc < 0) {
		cJSON_Delete(j);
		return rc;
	}
	st->object = xstrdup(obj->valuestring);
	st->base_gen = base_gen;
	st->base_size = (uint64_t)base_size;
	st->sent = (uint64_t)sent;
	st->staged = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "staged"));
	st->closing = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "closing"));
	st->symlink = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "symlink"));
	if (sess) {
		st->session = xstrdup(sess->valuestring);
		st->session_object = xstrdup(sobj->valuestring);
	}
	st->mtime_sec = msec;
	const cJSON *ns = cJSON_GetObjectItemCaseSensitive(j, "mtime_nsec");
	if (cJSON_IsNumber(ns) && ns->valuedouble >= 0 && ns->valuedouble < 1e9)
		st->mtime_nsec = (long)ns->valuedouble;
	cJSON_Delete(j);
	return 0;
}

void spool_state_clear(struct spool_state *st)
{
	free(st->object);
	free(st->session);
	free(st->session_object);
	memset(st, 0, sizeof(*st));
}

int spool_save(const struct spool *s, const char *id, const struct spool_state *st)
{
	char path[4096], tmp[4200];
	entry_path(s, id, "json", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	char *text = spool_state_to_json(st);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = 0;
	if (fd < 0) {
		rc = -errno;
	} else {
		size_t len = strlen(text);
		ssize_t n = write(fd, text, len);
		if (n != (ssize_t)len)
			rc = n < 0 ? -errno : -ENOSPC;
		if (close(fd) < 0 && rc == 0)
			rc = -errno;
		if (rc == 0 && rename(tmp, path) < 0)
			rc = -errno;
		if (rc < 0)
			unlink(tmp);
	}
	free(text);
	if (rc < 0)
		log_error("spool: cannot save the journal of %s: %s", st->object, strerror(-rc));
	return rc;
}

void spool_remove(const struct spool *s, const char *id)
{
	char path[4096];
	entry_path(s, id, "json", path, sizeof(path));
	unlink(path);
	entry_path(s, id, "data", path, sizeof(path));
	unlink(path);
}

int spool_scan(const struct spool *s,
	       void (*fn)(void *arg, const char *id, struct spool_state *st, int fd), void *arg)
{
	DIR *d = opendir(s->dir);
	if (!d)
		return -errno;
	int seen = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > 9 && strcmp(de->d_name + n - 9, ".json.tmp") == 0) {
			/* A journal being replaced when the process died: the old one stands. */
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name);
			unlink(path);
			continue;
		}
		if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		char id[256], path[4096];
		if (n - 5 >= sizeof(id))
			continue;
		memcpy(id, de->d_name, n - 5);
		id[n - 5] = '\0';
		seen++;
		entry_path(s, id, "json", path, sizeof(path));
		struct buf text = BUF_INIT;
		int jfd = open(path, O_RDONLY | O_CLOEXEC);
		char block[4096];
		ssize_t r;
		while (jfd >= 0 && (r = read(jfd, block, sizeof(block))) > 0)
			buf_append(&text, block, (size_t)r);
		if (jfd >= 0)
			close(jfd);
		struct spool_state st;
		if (!text.data || spool_state_from_json(text.data, text.len, &st) < 0) {
			log_error("spool: %s: unreadable journal, left in place", path);
			buf_free(&text);
			continue;
		}
		buf_free(&text);
		entry_path(s, id, "data", path, sizeof(path));
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			log_error("spool: %s: %s; the journal of %s is left in place", path,
				  strerror(errno), st.object);
			spool_state_clear(&st);
			continue;
		}
		fn(arg, id, &st, fd);
	}
	closedir(d);
	return seen;
}
