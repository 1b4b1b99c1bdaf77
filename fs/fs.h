/*
 * fs: the state of one mount and the helpers its FUSE operations share.
 *
 * The operations themselves live in ops_*.c, one family a file, each a
 * short function that translates a FUSE request into gcs/ calls and replies.
 * fs/ knows files, directories and inodes; it never builds a URL or parses
 * JSON.
 */
#ifndef GCSMOUNT_FS_H
#define GCSMOUNT_FS_H

#include <sys/stat.h>

#include "fs/inode.h"
#include "fs/options.h"
#include "fs/publisher.h"
#include "fs/spool.h"
#include "fs/uploader.h"
#include "fs/writer.h"
#include "gcs/gcs.h"

/*
 * An open file or directory handle, on the mount's list so that what the
 * kernel never released (a process still holding it at unmount) is freed
 * at the end. Linked and unlinked under the inode table lock.
 */
struct fs_open {
	struct fs_open *prev, *next;
	void (*drop)(struct fs *fs, struct fs_open *o);
};

struct fs {
	struct gcs_client *gcs;
	const struct mount_opts *opts;
	char *prefix;               /* "" or "p/" (with the trailing slash) */
	struct spool spool;         /* written data until the bucket holds it */
	struct uploader uploader;   /* streams chunks of files being written */
	struct writer_env wenv;     /* what every writer shares */
	struct publisher publisher; /* publishes long-open files every publish_interval */
	struct prefetcher *prefetcher; /* fetches ahead of sequential readers */
	struct fs_open open_handles;   /* list head; guarded by inodes.lock */
	char *tmp_prefix;           /* temporary objects: PREFIX.gcsmount-tmp/ */
	struct inode_table inodes;
	struct timespec started;    /* shown as the mtime of directories without one */
	struct fuse_session *se;    /* for notices to the kernel; set once mounted */
};

extern const struct fuse_lowlevel_ops fs_ops;

/* Entries asked for per listing request (readdir pages, a lookup's listing). */
#define FS_LIST_PAGE 1000

/* Where temporary objects live, under the prefix; never listed or looked up. */
#define FS_TMP_DIR ".gcsmount-tmp"

/* The longest name of a directory entry (a component of an object name). */
#define FS_NAME_MAX 255

/*
 * Object name for an inode (prefix + path, plus '/' for a directory when
 * dir_slash). Takes the table lock itself. Returns 0, or -ENAMETOOLONG /
 * -EINVAL when GCS cannot hold the name.
 */
int fs_object_name(struct fs *fs, struct inode *i, int dir_slash, struct buf *out);
/* Object name of child `name` of parent (same rules). */
int fs_child_name(struct fs *fs, struct inode *parent, const char *name, int dir_slash,
		  struct buf *out);
/* Both: the child's object name, and the prefix its own children would have
 * (which may be a byte longer than any object name: then nothing is under it). */
int fs_child_names(struct fs *fs, struct inode *parent, const char *name, struct buf *file,
		   struct buf *dir);

/*
 * Create the object for child `name` of parent whole, in one request:
 * "name/" (a directory's placeholder) when dir, else "name" holding body.
 * -EEXIST when it exists already. out may be NULL.
 */
int fs_create_object(struct fs *fs, struct inode *parent, const char *name, int dir,
		     const char *body, int symlink, const struct timespec *mtime,
		     struct gcs_object *out, const char *op);

/* Fill st from the inode's cached attributes (table lock held). */
void fs_fill_attr(struct fs *fs, struct inode *i, struct stat *st);
/* Fill a fuse_entry_param for i and count one lookup (table lock held). */
void fs_fill_entry(struct fs *fs, struct inode *i, struct fuse_entry_param *e);
/* Store what GCS said about an object into the inode (table lock held). */
void fs_apply_object(struct fs *fs, struct inode *i, const struct gcs_object *o);

/* One entry of a directory listing; name and obj (files) are owned. */
struct fs_dirent {
	char *name;
	enum inode_kind kind;
	struct gcs_object obj;      /* files: what the listing said */
};
typedef void (*fs_dirent_fn)(void *arg, struct fs_dirent *de);

/* A listing's entries (dirents.c), in blocks that never move once made. */
#define FS_DIRENT_BLOCK 512
struct fs_dirents {
	struct fs_dirent **blocks;
	size_t nblocks, cap;
	size_t n;
};
static inline struct fs_dirent *fs_dirents_at(const struct fs_dirents *v, size_t k)
{
	return &v->blocks[k / FS_DIRENT_BLOCK][k % FS_DIRENT_BLOCK];
}
/* Takes de over (name and obj). */
void fs_dirents_push(struct fs_dirents *v, struct fs_dirent *de);
void fs_dirents_free(struct fs_dirents *v);

/*
 * Directory knowledge (dircache.c): lookups answered from a directory's
 * known children. Functions without "takes the lock" want the table lock.
 */
/* The entries of a listing page of dir (prefix: its object prefix),
 * directories first, minus names no entry can hold, the placeholder and
 * the temporary directory; add() takes each one over (name and obj). */
void fs_page_entries(struct inode *dir, const char *prefix, struct gcs_list_page *page,
		     fs_dirent_fn add, void *arg);
/* fs_apply_object() for what a listing said, unless i holds a newer generation. */
void fs_apply_listed(struct fs *fs, struct inode *i, const struct gcs_object *o);
/* A listing of all of dir, asked for when dir's change count was `changes`:
 * unless the table contradicts it, its entries enter the table and dir
 * is complete until `until`. Returns 1 when it is. */
int fs_dir_take_listing(struct fs *fs, struct inode *dir, const struct fs_dirents *ents,
			uint64_t changes, double until);
/* This mount's mkdir made dir: empty, known for type_ttl. */
void fs_dir_created(struct fs *fs, struct inode *dir);
/* How long the kernel may keep a negative entry in dir. */
double fs_dir_negative_ttl(struct fs *fs, struct inode *dir, double now);
/* Something showed the knowledge of dir (of i's parent) wrong: drop it. Takes the lock. */
void fs_dir_doubt(struct fs *fs, struct inode *dir);
void fs_dir_doubt_parent(struct fs *fs, struct inode *i);
/* A lookup missed in dir: 1 when it should list dir too (then call
 * fs_dir_list_end with the same changes). */
int fs_dir_list_begin(struct fs *fs, struct inode *dir, double now, uint64_t *changes);
void fs_dir_list_end(struct fs *fs, struct inode *dir, struct gcs_lookup_listing *l,
		     uint64_t changes, double asked_at);

/* 1 when nothing but the placeholder is under prefix (in GCS or pending here), 0, or -errno. */
int fs_dir_is_empty(struct fs *fs, struct inode *dir, const char *prefix);

/* Stat the object again when the inode's attributes expired. 0 or -errno. */
int fs_refresh_attr(struct fs *fs, struct inode *i);
/* The inode's cached attributes are not to be trusted (its object changed
 * in the bucket): the next fs_refresh_attr asks the bucket. */
void fs_attr_doubt(struct fs *fs, struct inode *i);

/* The writers of files open for writing now, each with a reference the
 * caller drops (writer_unref); the array is the caller's to free. */
struct writer **fs_open_writers(struct fs *fs, size_t *n);

/* The list of open handles (table lock held for link/unlink). */
void fs_open_link(struct fs *fs, struct fs_open *o, void (*drop)(struct fs *, struct fs_open *));
void fs_open_unlink(struct fs_open *o);
/* At the end of a mount: drop every handle the kernel never released. */
void fs_open_drop_all(struct fs *fs);

/* Log a gcs error once and return the errno for a file call (negative): a
 * bucket that could not be reached is EIO, whatever the socket said. */
int fs_gcs_fail(const char *op, const struct gcs_error *e);

/* The inode for a request's ino (never NULL for inodes the kernel knows). */
struct inode *fs_inode(struct fs *fs, fuse_ino_t ino);

static inline struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Ops by family, gathered into fs_ops in ops_table.c. */
void fs_op_init(void *userdata, struct fuse_conn_info *conn);
void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi);
void fs_op_statfs(fuse_req_t req, fuse_ino_t ino);
void fs_op_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned int flags);
void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi);
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi);
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
/* The status file at the root (ops_status.c): never listed, never a real inode. */
#define FS_STATUS_INO ((fuse_ino_t)0x7fffffffffff5700ull)
int fs_status_is(fuse_ino_t parent, const char *name);
void fs_status_lookup(fuse_req_t req);
void fs_status_getattr(fuse_req_t req);
void fs_status_open(fuse_req_t req, struct fuse_file_info *fi);
void fs_status_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi);
void fs_status_release(fuse_req_t req, struct fuse_file_info *fi);

#endif
