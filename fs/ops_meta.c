/*
 * ops_meta: lookup, forget, getattr, setattr, statfs and symlinks.
 *
 * A name is a directory when the placeholder "name/" or anything under
 * "name/" exists (implicit directories), and a file when the object "name"
 * exists; when both do, the directory wins and the clash is logged.
 *
 * A lookup is answered by the inode table when it holds the name with fresh
 * attributes, by the directory's known children when the name is not among
 * them (dircache.c), and otherwise by GCS, with the directory's listing
 * asked for in the same round trip when that may make its children known.
 */
#include "fs/fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/log.h"
#include "fs/writer.h"

void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Always plus: a listing carries every entry's attributes at no cost,
	 * while the kernel's "auto" mode answers a later part of a listing
	 * without them, and each entry's stat is then a lookup. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/* Bigger requests mean fewer round trips through the kernel. */
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
}

/* Ask GCS what `name` under parent is (listing: see gcs_lookup). *kind is set when found. */
static int remote_lookup(struct fs *fs, const char *file, const char *dir,
			 struct gcs_lookup_listing *listing, struct gcs_object *obj,
			 enum inode_kind *kind)
{
	struct gcs_error e = {0};
	int is_dir = 0;
	int rc = gcs_lookup(fs->gcs, file, dir, listing, obj, &is_dir, &e);
	if (rc == 0 && is_dir && obj->name) {
		log_warn("'%s' is both an object and a directory; showing the directory", file);
		gcs_object_clear(obj);
	}
	if (is_dir) {
		*kind = INODE_DIR;
		rc = 0;
	} else if (rc == 0) {
		*kind = obj->is_symlink ? INODE_SYMLINK : INODE_FILE;
	} else if (rc != -ENOENT) {
		rc = fs_gcs_fail("lookup", &e);
	}
	return rc;
}

static void reply_negative(fuse_req_t req, double ttl)
{
	/* A negative entry the kernel may cache for ttl. */
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.entry_timeout = ttl;
	fuse_reply_entry(req, &e);
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	if (fs_status_is(parent_ino, name)) {
		fs_status_lookup(req);
		return;
	}
	struct fs *fs = fs_of(req);
	struct inode *parent = fs_inode(fs, parent_ino);
	struct fuse_entry_param e;
	if (!parent) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct buf file = BUF_INIT, dir = BUF_INIT, list_prefix = BUF_INIT;
	int rc = fs_child_names(fs, parent, name, &file, &dir);
	pthread_mutex_lock(&fs->inodes.lock);
	double now = inode_now();
	inode_dir_expire(&fs->inodes, now);
	struct inode *child = inode_child(&fs->inodes, parent, name);
	if (child && (child->writer || child->attr_expires > now)) {
		fs_fill_entry(fs, child, &e);
		pthread_mutex_unlock(&fs->inodes.lock);
		fuse_reply_entry(req, &e);
		goto out;
	}
	if (rc == 0 && !child && inode_dir_complete(parent, now)) {
		/* Every child is known and this is none of them. */
		double ttl = fs_dir_negative_ttl(fs, parent, now);
		pthread_mutex_unlock(&fs->inodes.lock);
		reply_negative(req, ttl);
		goto out;
	}
	uint64_t changes = 0;
	int list = rc == 0 && !child && fs_dir_list_begin(fs, parent, now, &changes);
	pthread_mutex_unlock(&fs->inodes.lock);
	if (rc == -ENOENT) {
		reply_negative(req, fs->opts->negative_ttl);
		goto out;
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		goto out;
	}

	struct gcs_lookup_listing listing = {.max_results = FS_LIST_PAGE};
	if (list) {
		rc = fs_object_name(fs, parent, 1, &list_prefix);
		listing.prefix = list_prefix.data;
	}
	struct gcs_object obj = {0};
	enum inode_kind kind = INODE_FILE;
	if (rc == 0)
		rc = remote_lookup(fs, file.data, dir.data, list ? &listing : NULL, &obj, &kind);
	pthread_mutex_lock(&fs->inodes.lock);
	if (list)
		fs_dir_list_end(fs, parent, &listing, changes, now);
	child = inode_child(&fs->inodes, parent, name);
	if (rc < 0) {
		if (rc == -ENOENT && child && !child->writer) {
			/* A name the table had is gone from the bucket. */
			inode_unhash(&fs->inodes, child);
			inode_dir_forget(&fs->inodes, parent);
		}
		double ttl = fs_dir_negative_ttl(fs, parent, inode_now());
		pthread_mutex_unlock(&fs->inodes.lock);
		if (rc == -ENOENT)
			reply_negative(req, ttl);
		else
			fuse_reply_err(req, -rc);
		goto out;
	}
	if (child && child->kind != kind && !child->writer) {
		inode_unhash(&fs->inodes, child); /* it changed type in the bucket */
		inode_dir_forget(&fs->inodes, parent);
	}
	child = inode_child_get(&fs->inodes, parent, name, kind);
	if (kind == INODE_DIR)
		child->attr_expires = inode_now() + fs->opts->stat_ttl;
	else if (!child->writer)
		fs_apply_object(fs, child, &obj);
	fs_fill_entry(fs, child, &e);
	pthread_mutex_unlock(&fs->inodes.lock);
	gcs_object_clear(&obj);
	fuse_reply_entry(req, &e);
out:
	buf_free(&file);
	buf_free(&dir);
	buf_free(&list_prefix);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);
	pthread_mutex_lock(&fs->inodes.lock);
	struct inode *i = inode_by_ino(&fs->inodes, ino);
	if (i)
		inode_forget(&fs->inodes, i, nlookup);
	pthread_mutex_unlock(&fs->inodes.lock);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);
	pthread_mutex_lock(&fs->inodes.lock);
	for (size_t k = 0; k < count; k++) {
		struct inode *i = inode_by_ino(&fs->inodes, forgets[k].ino);
		if (i)
			inode_forget(&fs->inodes, i, forgets[k].nlookup);
	}
	pthread_mutex_unlock(&fs->inodes.lock);
	fuse_reply_none(req);
}

/* Refresh a file's attributes from GCS when they expired. */
int fs_refresh_attr(struct fs *fs, struct inode *i)
{
	pthread_mutex_lock(&fs->inodes.lock);
	int fresh = i->kind == INODE_DIR || i->writer || i->attr_expires > inode_now();
	pthread_mutex_unlock(&fs->inodes.lock);
	if (fresh)
		return 0;
	struct buf name = BUF_INIT;
	struct gcs_object obj;
	struct gcs_error e = {0};
	int rc = fs_object_name(fs, i, 0, &name);
	if (rc == 0)
		rc = gcs_object_stat(fs->gcs, name.data, &obj, &e);
	buf_free(&name);
	if (rc == -ENOENT) {
		/* Gone from the bucket: the name goes, and what its directory knew. */
		pthread_mutex_lock(&fs->inodes.lock);
		struct inode *parent = i->hashed ? i->parent : NULL;
		if (parent && !i->writer) {
			inode_ref(i);
			inode_unhash(&fs->inodes, i);
			inode_dir_forget(&fs->inodes, parent);
			inode_unref(&fs->inodes, i);
		}
		pthread_mutex_unlock(&fs->inodes.lock);
		return rc;
	}
	if (rc < 0)
		return fs_gcs_fail("getattr", &e);
	pthread_mutex_lock(&fs->inodes.lock);
	if (!i->writer)
		fs_apply_object(fs, i, &obj);
	pthread_mutex_unlock(&fs->inodes.lock);
	gcs_object_clear(&obj);
	return 0;
}

void fs_attr_doubt(struct fs *fs, struct inode *i)
{
	pthread_mutex_lock(&fs->inodes.lock);
	i->attr_expires = 0;
	pthread_mutex_unlock(&fs->inodes.lock);
}

static void reply_attr(fuse_req_t req, struct fs *fs, struct inode *i)
{
	struct stat st;
	pthread_mutex_lock(&fs->inodes.lock);
	fs_fill_attr(fs, i, &st);
	pthread_mutex_unlock(&fs->inodes.lock);
	fuse_reply_attr(req, &st, fs->opts->stat_ttl);
}

/*
 * i's object was deleted from the bucket. While i is open here the open
 * file stays what it was, with no name left, as a local file unlinked while
 * open does (fstat keeps working; asked again next time), and the kernel's
 * entry for the name goes once this reply is in (its lookup then finds
 * nothing). 0, replying nothing, when i is not open here.
 */
static int reply_gone_while_open(fuse_req_t req, struct fs *fs, struct inode *i)
{
	struct stat st;
	fuse_ino_t parent = 0;
	char *name = NULL;
	pthread_mutex_lock(&fs->inodes.lock);
	int open_here = i->opens > 0;
	if (open_here) {
		fs_fill_attr(fs, i, &st);
		parent = i->parent ? i->parent->ino : 0;
		name = i->name ? xstrdup(i->name) : NULL;
	}
	pthread_mutex_unlock(&fs->inodes.lock);
	if (!open_here)
		return 0;
	st.st_nlink = 0;
	fuse_reply_attr(req, &st, 0);
	if (fs->se && parent && name)
		(void)fuse_lowlevel_notify_inval_entry(fs->se, parent, name, strlen(name));
	free(name);
	return 1;
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	if (ino == FS_STATUS_INO) {
		fs_status_getattr(req);
		return;
	}
	struct fs *fs = fs_of(req);
	struct inode *i = fs_inode(fs, ino);
	if (!i) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	int rc = fs_refresh_attr(fs, i);
	if (rc == -ENOENT && reply_gone_while_open(req, fs, i))
		return;
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_attr(req, fs, i);
}

/* truncate(2) of a file nobody has open here: a short-lived writer does it. */
static int truncate_closed(struct fs *fs, struct inode *i, uint64_t size)
{
	struct buf name = BUF_INIT;
	struct gcs_error e = {0};
	struct writer *w = NULL;
	struct gcs_object obj = {0};
	int rc = fs_refresh_attr(fs, i);
	if (rc == 0)
		rc = fs_object_name(fs, i, 0, &name);
	if (rc == 0)
		rc = writer_open(&fs->wenv, name.data, i->generation, i->size, i->components,
				 size == 0, &w);
	if (rc == 0 && size > 0)
		rc = writer_truncate(w, size);
	if (rc == 0 && (rc = writer_publish(w, &obj, &e)) < 0)
		rc = fs_gcs_fail("truncate", &e);
	if (rc == 0 && obj.name) {
		pthread_mutex_lock(&fs->inodes.lock);
		fs_apply_object(fs, i, &obj);
		pthread_mutex_unlock(&fs->inodes.lock);
	}
	gcs_object_clear(&obj);
	writer_unref(w);
	buf_free(&name);
	return rc;
}

static int set_mtime_closed(struct fs *fs, struct inode *i, const struct timespec *t)
{
	struct buf name = BUF_INIT;
	struct gcs_error e = {0};
	struct gcs_object obj;
	int rc = fs_object_name(fs, i, 0, &name);
	if (rc == 0)
		rc = gcs_object_set_mtime(fs->gcs, name.data, t, &obj, &e);
	buf_free(&name);
	if (rc < 0)
		return fs_gcs_fail("utimens", &e);
	pthread_mutex_lock(&fs->inodes.lock);
	fs_apply_object(fs, i, &obj);
	pthread_mutex_unlock(&fs->inodes.lock);
	gcs_object_clear(&obj);
	return 0;
}

/*
 * chmod and chown succeed and change nothing: modes and owners come from the
 * mount options (GCS objects carry neither). Size and mtime are real.
 */
void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *i = ino == FS_STATUS_INO ? NULL : fs_inode(fs, ino);
	if (!i) {
		fuse_reply_err(req, ino == FS_STATUS_INO ? EACCES : ENOENT);
		return;
	}
	int rc = 0;
	pthread_mutex_lock(&fs->inodes.lock);
	struct writer *w = i->writer;
	if (w)
		writer_ref(w); /* a release may drop the inode's own meanwhile */
	enum inode_kind kind = i->kind;
	pthread_mutex_unlock(&fs->inodes.lock);
	if ((to_set & FUSE_SET_ATTR_SIZE) && kind == INODE_DIR) {
		rc = -EISDIR;
	} else if ((to_set & FUSE_SET_ATTR_SIZE) &&
		   (uint64_t)attr->st_size > GCS_MAX_OBJECT_SIZE) {
		rc = -EFBIG; /* past the largest object GCS holds */
	} else if ((to_set & FUSE_SET_ATTR_SIZE) && !w) {
		rc = truncate_closed(fs, i, (uint64_t)attr->st_size);
	} else if (to_set & FUSE_SET_ATTR_SIZE) {
		rc = writer_truncate(w, (uint64_t)attr->st_size);
		if (rc == 0 && !fi) {
			/* truncate(2) by name: the object follows now, as for a closed file. */
			struct gcs_object obj = {0};
			struct gcs_error e = {0};
			rc = writer_publish(w, &obj, &e);
			if (rc < 0) {
				rc = fs_gcs_fail("truncate", &e);
			} else if (obj.name) {
				/* The inode follows the object: once this writer goes,
				 * opens pin what it has. */
				pthread_mutex_lock(&fs->inodes.lock);
				fs_apply_object(fs, i, &obj);
				pthread_mutex_unlock(&fs->inodes.lock);
			}
			gcs_object_clear(&obj);
		}
	}
	if (rc == 0 && (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) &&
	    kind != INODE_DIR) {
		struct timespec t = attr->st_mtim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			clock_gettime(CLOCK_REALTIME, &t);
		if (w && writer_set_mtime(w, &t)) {
			pthread_mutex_lock(&fs->inodes.lock);
			i->mtime = t;
			pthread_mutex_unlock(&fs->inodes.lock);
		} else {
			rc = set_mtime_closed(fs, i, &t);
		}
	}
	writer_unref(w);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_attr(req, fs, i);
}

void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	/* A bucket has no size limit: report plenty, so df and installers work. */
	struct statvfs st;
	memset(&st, 0, sizeof(st));
	st.f_bsize = 1 << 20;
	st.f_frsize = 1 << 20;
	st.f_blocks = 1ull << 30;
	st.f_bfree = 1ull << 30;
	st.f_bavail = 1ull << 30;
	st.f_files = 1ull << 30;
	st.f_ffree = 1ull << 30;
	st.f_favail = 1ull << 30;
	st.f_namemax = FS_NAME_MAX;
	fuse_reply_statfs(req, &st);
}

void fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct inode *i = fs_inode(fs, ino);
	if (!i || i->kind != INODE_SYMLINK) {
		fuse_reply_err(req, i ? EINVAL : ENOENT);
		return;
	}
	pthread_mutex_lock(&fs->inodes.lock);
	char *target = i->symlink_target ? xstrdup(i->symlink_target) : NULL;
	uint64_t size = i->size;
	int64_t gen = i->generation;
	pthread_mutex_unlock(&fs->inodes.lock);
	if (!target) {
		/* gcsfuse's form: the target is the object's body. */
		struct buf name = BUF_INIT;
		struct gcs_error e = {0};
		if (size > 4096) {
			fuse_reply_err(req, ENAMETOOLONG);
			return;
		}
		target = xcalloc(1, size + 1);
		int rc = fs_object_name(fs, i, 0, &name);
		if (rc == 0)
			rc = gcs_object_read(fs->gcs, name.data, gen, 0, target, size, &e);
		buf_free(&name);
		if (rc < 0) {
			free(target);
			fuse_reply_err(req, -fs_gcs_fail("readlink", &e));
			return;
		}
		target[size] = '\0';
		pthread_mutex_lock(&fs->inodes.lock);
		if (!i->symlink_target)
			i->symlink_target = xstrdup(target);
		pthread_mutex_unlock(&fs->inodes.lock);
	}
	fuse_reply_readlink(req, target);
	free(target);
}

void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct inode *parent = fs_inode(fs, parent_ino);
	struct gcs_object obj;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int rc = fs_create_object(fs, parent, name, 0, link, 1, &now, &obj, "symlink");
	if (rc < 0) {
		if (rc == -EEXIST)
			fs_dir_doubt(fs, parent); /* it looked absent */
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param ep;
	pthread_mutex_lock(&fs->inodes.lock);
	inode_dir_changed(parent);
	struct inode *i = inode_child_get(&fs->inodes, parent, name, INODE_SYMLINK);
	i->kind = INODE_SYMLINK;
	fs_apply_object(fs, i, &obj);
	free(i->symlink_target);
	i->symlink_target = xstrdup(link);
	fs_fill_entry(fs, i, &ep);
	pthread_mutex_unlock(&fs->inodes.lock);
	gcs_object_clear(&obj);
	fuse_reply_entry(req, &ep);
}
