/*
 * json_arena: the memory cJSON takes while a listing page is parsed, handed
 * out from blocks that are kept and reused from page to page, instead of
 * tens of thousands of malloc calls on fresh heap pages per page (a page of
 * 1,000 objects took 3 to 12 ms to parse on a FUSE thread's cold heap,
 * about 1 ms from warm blocks).
 *
 * cJSON's allocation hooks are process-wide: gcs_json_init() installs them
 * once, and they serve from the arena of the calling thread between
 * json_arena_begin and json_arena_end, from malloc otherwise. Under
 * AddressSanitizer the arena is left out, so cJSON's memory stays checked.
 */
#include "gcs/json_arena.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define BLOCK_SIZE (1u << 20)
#define BLOCK_KEEP 8            /* blocks kept for reuse across pages and threads */
#define LARGEST (BLOCK_SIZE / 8) /* bigger allocations go to malloc */

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_OFF 1
#endif
#endif
#ifndef ARENA_OFF
#define ARENA_OFF 0
#endif

struct block {
	struct block *next;
	size_t used;
	_Alignas(16) char data[];
};

#define BLOCK_DATA (BLOCK_SIZE - sizeof(struct block))

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block *pool;
static int pooled;
static _Thread_local struct json_arena *current;

static struct block *block_get(void)
{
	pthread_mutex_lock(&pool_lock);
	struct block *b = pool;
	if (b) {
		pool = b->next;
		pooled--;
	}
	pthread_mutex_unlock(&pool_lock);
	if (!b) {
		void *m = mmap(NULL, BLOCK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		if (m == MAP_FAILED)
			return NULL;
		b = m;
	}
	b->next = NULL;
	b->used = 0;
	return b;
}

static void block_put(struct block *b)
{
	pthread_mutex_lock(&pool_lock);
	if (pooled < BLOCK_KEEP) {
		b->next = pool;
		pool = b;
		pooled++;
		b = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	if (b)
		munmap(b, BLOCK_SIZE);
}

static void *arena_alloc(struct json_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct block *b = a->blocks;
	if (!b || b->used + n > BLOCK_DATA) {
		b = block_get();
		if (!b)
			return NULL;
		b->next = a->blocks;
		a->blocks = b;
	}
	void *p = b->data + b->used;
	b->used += n;
	return p;
}

static int arena_owns(const struct json_arena *a, const void *p)
{
	for (const struct block *b = a->blocks; b; b = b->next)
		if ((const char *)p >= b->data && (const char *)p < b->data + BLOCK_DATA)
			return 1;
	return 0;
}

static void *hook_malloc(size_t n)
{
	struct json_arena *a = current;
	void *p = a && n <= LARGEST ? arena_alloc(a, n) : NULL;
	return p ? p : malloc(n);
}

static void hook_free(void *p)
{
	struct json_arena *a = current;
	if (p && !(a && arena_owns(a, p)))
		free(p);
}

static void install(void)
{
	cJSON_Hooks h = {hook_malloc, hook_free};
	cJSON_InitHooks(&h);
}

void gcs_json_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	if (!ARENA_OFF)
		pthread_once(&once, install);
}

void json_arena_begin(struct json_arena *a)
{
	a->blocks = NULL;
	current = a;
}

void json_arena_end(struct json_arena *a)
{
	current = NULL;
	while (a->blocks) {
		struct block *b = a->blocks;
		a->blocks = b->next;
		block_put(b);
	}
}
