/*
 * dirents: the entries of a listing as it grows, in blocks that stay where
 * they are. A directory of 100,000 names is never copied to a bigger array
 * as its pages come in, and memory already touched is not touched again.
 */
#include "fs/fs.h"

#include <stdlib.h>

void fs_dirents_push(struct fs_dirents *v, struct fs_dirent *de)
{
	size_t b = v->n / FS_DIRENT_BLOCK;
	if (b == v->nblocks) {
		if (v->nblocks == v->cap) {
			v->cap = v->cap ? v->cap * 2 : 8;
			v->blocks = xrealloc(v->blocks, v->cap * sizeof(*v->blocks));
		}
		v->blocks[v->nblocks++] = xmalloc(FS_DIRENT_BLOCK * sizeof(struct fs_dirent));
	}
	*fs_dirents_at(v, v->n++) = *de;
}

void fs_dirents_free(struct fs_dirents *v)
{
	for (size_t k = 0; k < v->n; k++) {
		struct fs_dirent *de = fs_dirents_at(v, k);
		free(de->name);
		gcs_object_clear(&de->obj);
	}
	for (size_t b = 0; b < v->nblocks; b++)
		free(v->blocks[b]);
	free(v->blocks);
	*v = (struct fs_dirents){0};
}
