/*
 * Inside the file operations (ops_file.c: open, write, close; ops_read.c:
 * read): what an open file handle holds. Not to be included elsewhere.
 */
#ifndef GCSMOUNT_HANDLE_H
#define GCSMOUNT_HANDLE_H

#include "fs/fs.h"
#include "fs/reader.h"

struct handle {
	struct fs_open open;      /* first: on the mount's list of open handles */
	struct inode *inode;      /* holds a reference */
	struct reader *reader;    /* read-only handles */
	pthread_mutex_t below_lock; /* guards below, and is held while reading through it */
	struct reader *below;     /* while the file is written here: its bytes only the bucket
				   * holds yet, read ahead as a reader's are */
	int writable;
	int cached;               /* a reader through the kernel's page cache (see fs_op_open) */
	int direct;               /* a reader bypassing it */
};

static inline struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

/* What a reader of i's object pins now (table lock held). */
static inline struct reader_pin handle_inode_pin(const struct inode *i)
{
	struct reader_pin pin = {.generation = i->generation, .size = i->size,
				 .crc32c = i->crc32c, .has_crc32c = i->has_crc32c};
	return pin;
}

/*
 * The size the kernel holds for ino is no longer the file's: it asks again
 * before its next read (each read checks attributes that were invalidated)
 * or stat. Attributes only, no page is touched, so a read under way is safe.
 */
void handle_kernel_size_stale(struct fs *fs, fuse_ino_t ino);

#endif
