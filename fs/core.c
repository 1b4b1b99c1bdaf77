/*
 * core: what every FUSE operation shares: names of objects, attributes,
 * entries, and turning a gcs error into an errno plus one log line (a
 * burst of failures is logged in part, the rest counted).
 */
#include "fs/fs.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "fs/writer.h"

/* At most ERROR_BURST failure lines per ERROR_WINDOW seconds: when the
 * server or the token endpoint is down, every call fails alike, and a
 * line each would bury the log. What is held back is counted and said. */
#define ERROR_BURST 20
#define ERROR_WINDOW 10

static struct {
	pthread_mutex_t lock;
	time_t window;            /* start of the current window */
	int logged;               /* lines in it */
	long held;                /* lines held back in it */
} error_lines = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* 1 if a failure line may be logged now; reports what a window held back. */
static int error_line_allowed(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&error_lines.lock);
	long held = 0;
	if (ts.tv_sec - error_lines.window >= ERROR_WINDOW) {
		held = error_lines.held;
		error_lines.window = ts.tv_sec;
		error_lines.logged = 0;
		error_lines.held = 0;
	}
	int ok = error_lines.logged < ERROR_BURST;
	if (ok)
		error_lines.logged++;
	else
		error_lines.held++;
	pthread_mutex_unlock(&error_lines.lock);
	if (held)
		log_error("%ld more failures not logged in %d s (like the ones above)", held,
			  ERROR_WINDOW);
	return ok;
}

struct inode *fs_inode(struct fs *fs, fuse_ino_t ino)
{
	pthread_mutex_lock(&fs->inodes.lock);
	struct inode *i = inode_by_ino(&fs->inodes, ino);
	pthread_mutex_unlock(&fs->inodes.lock);
	return i;
}

static int finish_name(struct buf *out, int dir_slash)
{
	if (dir_slash && out->len && out->data[out->len - 1] != '/')
		buf_putc(out, '/');
	if (out->len == 0)
		return 0; /* the bucket root */
	return gcs_name_check(out->data, out->len);
}

int fs_object_name(struct fs *fs, struct inode *i, int dir_slash, struct buf *out)
{
	struct buf path = BUF_INIT;
	pthread_mutex_lock(&fs->inodes.lock);
	inode_path(i, &path);
	pthread_mutex_unlock(&fs->inodes.lock);
	buf_reset(out);
	buf_puts(out, fs->prefix);
	buf_append(out, path.data, path.len);
	buf_free(&path);
	if (i->ino == FUSE_ROOT_ID) {
		/* The root is the prefix itself ("p/"), or the bucket root (""). */
		return 0;
	}
	return finish_name(out, dir_slash);
}

int fs_child_name(struct fs *fs, struct inode *parent, const char *name, int dir_slash,
		  struct buf *out)
{
	if (strchr(name, '/'))
		return -EINVAL;
	if (strlen(name) > FS_NAME_MAX)
		return -ENAMETOOLONG; /* a listing could not show it */
	if (parent->ino == FUSE_ROOT_ID && strcmp(name, FS_TMP_DIR) == 0)
		return -ENOENT; /* temporary objects stay out of sight */
	if (fs_status_is(parent->ino, name))
		return -EACCES; /* the status file's name */
	int rc = fs_object_name(fs, parent, 1, out);
	if (rc < 0)
		return rc;
	buf_puts(out, name);
	return finish_name(out, dir_slash);
}

int fs_child_names(struct fs *fs, struct inode *parent, const char *name, struct buf *file,
		   struct buf *dir)
{
	int rc = fs_child_name(fs, parent, name, 0, file);
	if (rc == 0) {
		buf_reset(dir);
		buf_append(dir, file->data, file->len);
		buf_putc(dir, '/');
	}
	return rc;
}

void fs_fill_attr(struct fs *fs, struct inode *i, struct stat *st)
{
	const struct mount_opts *o = fs->opts;
	memset(st, 0, sizeof(*st));
	st->st_ino = i->ino;
	st->st_uid = o->uid;
	st->st_gid = o->gid;
	st->st_blksize = 1 << 20;
	if (i->kind == INODE_DIR) {
		st->st_mode = S_IFDIR | o->dir_mode;
		st->st_nlink = 2;
		st->st_size = 4096;
		st->st_mtim = i->mtime.tv_sec ? i->mtime : fs->started;
	} else {
		st->st_mode = (i->kind == INODE_SYMLINK ? S_IFLNK | 0777 : S_IFREG | o->file_mode);
		st->st_nlink = 1;
		st->st_size = (off_t)(i->writer ? writer_size(i->writer) : i->size);
		st->st_mtim = i->mtime;
	}
	st->st_blocks = (st->st_size + 511) / 512;
	i->attr_size = (uint64_t)st->st_size;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

void fs_fill_entry(struct fs *fs, struct inode *i, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = i->ino;
	e->generation = 1;
	e->attr_timeout = fs->opts->stat_ttl;
	e->entry_timeout = fs->opts->type_ttl;
	fs_fill_attr(fs, i, &e->attr);
	i->nlookup++;
}

void fs_apply_object(struct fs *fs, struct inode *i, const struct gcs_object *o)
{
	i->size = o->size;
	i->generation = o->generation;
	i->components = o->component_count;
	i->crc32c = o->crc32c;
	i->has_crc32c = o->has_crc32c;
	i->mtime = o->mtime;
	if (o->is_symlink) {
		i->kind = INODE_SYMLINK;
		if (o->symlink_target) {
			free(i->symlink_target);
			i->symlink_target = xstrdup(o->symlink_target);
		}
	}
	i->attr_expires = inode_now() + fs->opts->stat_ttl;
}

int fs_gcs_fail(const char *op, const struct gcs_error *e)
{
	if (e->err == -ENOENT)
		log_debug("%s: %s", op, e->msg);
	else if (error_line_allowed())
		log_error("%s: %s", op, e->msg);
	switch (e->err) {
	case 0:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EHOSTUNREACH:
	case -ETIMEDOUT:
	case -ECANCELED:
		/* The bucket could not be reached (or the shutdown deadline cut
		 * the request short): to a file call that is an I/O error (the
		 * log line says which), not a socket's errno. */
		return -EIO;
	default:
		return e->err;
	}
}

int fs_create_object(struct fs *fs, struct inode *parent, const char *name, int dir,
		     const char *body, int symlink, const struct timespec *mtime,
		     struct gcs_object *out, const char *op)
{
	struct buf obj_name = BUF_INIT;
	struct gcs_error e = {0};
	/* Generation 0: it must not exist; someone else's is EEXIST, never replaced. */
	struct gcs_write_opts opts = {.if_generation_match = 0, .mtime = mtime, .symlink = symlink};
	int rc = parent ? fs_child_name(fs, parent, name, dir, &obj_name) : -ENOENT;
	if (rc == 0) {
		rc = gcs_object_insert(fs->gcs, obj_name.data, body, strlen(body), &opts, out, &e);
		if (rc == -ESTALE)
			rc = -EEXIST;
		else if (rc < 0)
			rc = fs_gcs_fail(op, &e);
	}
	buf_free(&obj_name);
	return rc;
}

void fs_open_link(struct fs *fs, struct fs_open *o, void (*drop)(struct fs *, struct fs_open *))
{
	struct fs_open *head = &fs->open_handles;
	if (!head->next)
		head->next = head->prev = head;
	o->drop = drop;
	o->next = head->next;
	o->prev = head;
	head->next->prev = o;
	head->next = o;
}

void fs_open_unlink(struct fs_open *o)
{
	if (!o->next)
		return;
	o->prev->next = o->next;
	o->next->prev = o->prev;
	o->next = o->prev = NULL;
}

void fs_open_drop_all(struct fs *fs)
{
	for (;;) {
		pthread_mutex_lock(&fs->inodes.lock);
		struct fs_open *head = &fs->open_handles;
		struct fs_open *o = head->next && head->next != head ? head->next : NULL;
		pthread_mutex_unlock(&fs->inodes.lock);
		if (!o)
			return;
		o->drop(fs, o); /* unlinks it */
	}
}

struct writer **fs_open_writers(struct fs *fs, size_t *n)
{
	struct inode_table *t = &fs->inodes;
	struct writer **out = NULL;
	size_t cap = 0;
	*n = 0;
	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct inode *i = t->by_ino[b]; i; i = i->next_ino) {
			if (!i->writer)
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 16;
				out = xrealloc(out, cap * sizeof(*out));
			}
			writer_ref(i->writer);
			out[(*n)++] = i->writer;
		}
	pthread_mutex_unlock(&t->lock);
	return out;
}
