/*
 * object_json: object resources and list pages from their JSON.
 *
 * GCS sends 64-bit numbers (size, generation) as JSON strings; both forms
 * are accepted. mtime is taken from the metadata other tools write, in order
 * of precision: rclone's `mtime` (RFC 3339, ns), `goog-reserved-file-mtime`
 * (Unix seconds, gcsfuse and rclone), gcsfuse's `gcsfuse_mtime`; else the
 * object's `updated`.
 */
#include "gcs/gcs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/crc32c.h"
#include "gcs/json_arena.h"

/* The members an object resource is read for: the first of each name, as
 * cJSON_GetObjectItemCaseSensitive finds them, in one walk of the object
 * (a lookup per member walked it once per member: most of an entry's cost). */
struct members {
	const cJSON *name, *size, *generation, *metageneration, *component_count, *crc32c,
		*updated, *metadata;
};

static void take(const cJSON **slot, const cJSON *m, const char *key, const char *want)
{
	if (!*slot && strcmp(key, want) == 0)
		*slot = m;
}

static void find_members(const cJSON *j, struct members *f)
{
	memset(f, 0, sizeof(*f));
	for (const cJSON *m = j->child; m; m = m->next) {
		const char *k = m->string;
		if (!k)
			continue;
		switch (k[0]) {
		case 'n': take(&f->name, m, k, "name"); break;
		case 's': take(&f->size, m, k, "size"); break;
		case 'g': take(&f->generation, m, k, "generation"); break;
		case 'm':
			take(&f->metageneration, m, k, "metageneration");
			take(&f->metadata, m, k, "metadata");
			break;
		case 'c':
			take(&f->component_count, m, k, "componentCount");
			take(&f->crc32c, m, k, "crc32c");
			break;
		case 'u': take(&f->updated, m, k, "updated"); break;
		default: break;
		}
	}
}

/* Decimal digits only, at least one, below 2^64: what strtoull accepted
 * here, without its generality, whose cost showed in long listings. */
static int parse_dec_u64(const char *s, uint64_t *out)
{
	uint64_t n = 0;
	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		uint64_t d = (uint64_t)(*s - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -EINVAL;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

static int get_u64(const cJSON *v, uint64_t *out)
{
	if (cJSON_IsString(v))
		return parse_dec_u64(v->valuestring, out);
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 18446744073709551616.0) {
		*out = (uint64_t)v->valuedouble;
		return 0;
	}
	return -ENOENT;
}

static const char *str_of(const cJSON *v)
{
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *get_str(const cJSON *obj, const char *key)
{
	return str_of(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static void parse_mtime(const cJSON *updated, const cJSON *md, struct gcs_object *o)
{
	const char *s;
	if (md && (s = get_str(md, "mtime")) && gcs_parse_rfc3339(s, &o->mtime) == 0)
		return;
	if (md && (s = get_str(md, "goog-reserved-file-mtime"))) {
		char *end;
		errno = 0;
		long long secs = strtoll(s, &end, 10);
		if (!errno && end != s && !*end) {
			o->mtime.tv_sec = (time_t)secs;
			o->mtime.tv_nsec = 0;
			return;
		}
	}
	if (md && (s = get_str(md, "gcsfuse_mtime")) && gcs_parse_rfc3339(s, &o->mtime) == 0)
		return;
	if ((s = str_of(updated)) && gcs_parse_rfc3339(s, &o->mtime) == 0)
		return;
	o->mtime.tv_sec = 0;
	o->mtime.tv_nsec = 0;
}

static int object_from_json(const cJSON *j, struct gcs_object *o)
{
	memset(o, 0, sizeof(*o));
	if (!cJSON_IsObject(j))
		return -EINVAL;
	struct members f;
	find_members(j, &f);
	const char *name = str_of(f.name);
	if (!name)
		return -EINVAL;
	uint64_t v;
	if (get_u64(f.size, &o->size) < 0)
		o->size = 0;
	if (get_u64(f.generation, &v) == 0)
		o->generation = (int64_t)v;
	if (get_u64(f.metageneration, &v) == 0)
		o->metageneration = (int64_t)v;
	o->component_count = 1;
	if (get_u64(f.component_count, &v) == 0)
		o->component_count = (int)v;
	const char *crc = str_of(f.crc32c);
	if (crc && crc32c_from_base64(crc, &o->crc32c) == 0)
		o->has_crc32c = 1;
	const cJSON *md = cJSON_IsObject(f.metadata) ? f.metadata : NULL;
	parse_mtime(f.updated, md, o);
	if (md) {
		const char *sl = get_str(md, "goog-reserved-file-is-symlink");
		const char *old = get_str(md, "gcsfuse_symlink_target");
		if (sl && strcmp(sl, "true") == 0)
			o->is_symlink = 1;
		if (old) {
			o->is_symlink = 1;
			o->symlink_target = xstrdup(old);
		}
	}
	o->name = xstrdup(name);
	return 0;
}

int gcs_object_parse(const char *json, size_t len, struct gcs_object *out)
{
	memset(out, 0, sizeof(*out));
	cJSON *j = cJSON_ParseWithLength(json, len);
	if (!j)
		return -EINVAL;
	int rc = object_from_json(j, out);
	cJSON_Delete(j);
	return rc;
}

void gcs_object_clear(struct gcs_object *o)
{
	free(o->name);
	free(o->symlink_target);
	memset(o, 0, sizeof(*o));
}

int gcs_list_parse(const char *json, size_t len, struct gcs_list_page *out)
{
	memset(out, 0, sizeof(*out));
	struct json_arena arena;
	json_arena_begin(&arena);
	cJSON *j = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		json_arena_end(&arena);
		return -EINVAL;
	}
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
	const cJSON *prefixes = cJSON_GetObjectItemCaseSensitive(j, "prefixes");
	/* Anything but arrays is not a listing: walk nothing. */
	if (!cJSON_IsArray(items))
		items = NULL;
	if (!cJSON_IsArray(prefixes))
		prefixes = NULL;
	int ni = cJSON_IsArray(items) ? cJSON_GetArraySize(items) : 0;
	int np = cJSON_IsArray(prefixes) ? cJSON_GetArraySize(prefixes) : 0;
	out->items = xcalloc((size_t)ni + 1, sizeof(*out->items));
	out->prefixes = xcalloc((size_t)np + 1, sizeof(*out->prefixes));
	const cJSON *it;
	cJSON_ArrayForEach(it, items) {
		if (object_from_json(it, &out->items[out->nitems]) == 0)
			out->nitems++;
		else
			out->nbad++;
	}
	cJSON_ArrayForEach(it, prefixes) {
		if (cJSON_IsString(it))
			out->prefixes[out->nprefixes++] = xstrdup(it->valuestring);
		else
			out->nbad++;
	}
	const char *tok = get_str(j, "nextPageToken");
	if (tok && tok[0])
		out->next_page_token = xstrdup(tok);
	cJSON_Delete(j);
	json_arena_end(&arena);
	return 0;
}

void gcs_list_page_free(struct gcs_list_page *p)
{
	for (size_t i = 0; i < p->nitems; i++)
		gcs_object_clear(&p->items[i]);
	for (size_t i = 0; i < p->nprefixes; i++)
		free(p->prefixes[i]);
	free(p->items);
	free(p->prefixes);
	free(p->next_page_token);
	memset(p, 0, sizeof(*p));
}
