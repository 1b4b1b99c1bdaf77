/*
 * json_arena: reused blocks for the memory cJSON takes while a listing page
 * is parsed (see json_arena.c). Between begin and end, cJSON calls of this
 * thread allocate from the arena; the tree must be deleted before end.
 */
#ifndef GCSMOUNT_JSON_ARENA_H
#define GCSMOUNT_JSON_ARENA_H

struct block;

struct json_arena {
	struct block *blocks;       /* in use, the newest first */
};

/* Install cJSON's hooks once; before it (or under ASan) the arena is idle. */
void gcs_json_init(void);

void json_arena_begin(struct json_arena *a);
void json_arena_end(struct json_arena *a);

#endif
