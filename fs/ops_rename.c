/*
 * ops_rename: unlink and rename.
 *
 * GCS has no rename: a file is copied by objects.rewrite (pinned to the
 * source generation) and the source deleted afterwards. A directory is every
 * object under its prefix, copied first and deleted only once all copies
 * exist; a failed copy deletes the copies made, so a failure never leaves a
 * half-deleted source.
 */
#include "fs/fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fs/writer.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

void fs_op_unlink(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct inode *parent = fs_inode(fs, parent_ino);
	struct buf obj_name = BUF_INIT;
	struct gcs_error e = {0};
	int rc = parent ? fs_child_name(fs, parent, name, 0, &obj_name) : -ENOENT;
	if (rc < 0) {
		buf_free(&obj_name);
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->inodes.lock);
	struct inode *child = inode_child(&fs->inodes, parent, name);
	int pending = 0;
	if (child && child->writer) {
		/* Open here: its handles keep writing into nothing that will be uploaded. */
		writer_unlink(child->writer);
		pending = child->generation == 0;
	}
	pthread_mutex_unlock(&fs->inodes.lock);
	rc = gcs_object_delete(fs->gcs, obj_name.data, GCS_ANY_GENERATION, &e);
	if (rc == -ENOENT && pending)
		rc = 0;
	else if (rc < 0 && rc != -ENOENT)
		rc = fs_gcs_fail("unlink", &e);
	buf_free(&obj_name);
	if (rc == 0 || rc == -ENOENT) {
		pthread_mutex_lock(&fs->inodes.lock);
		inode_dir_changed(parent);
		child = inode_child(&fs->inodes, parent, name);
		if (child)
			inode_unhash(&fs->inodes, child);
		if (rc == -ENOENT) /* it was known here, and is not in the bucket */
			inode_dir_forget(&fs->inodes, parent);
		pthread_mutex_unlock(&fs->inodes.lock);
	}
	fuse_reply_err(req, -rc);
}

/* What a name is in the bucket: 0 nothing, or an inode kind + 1. */
static int probe_kind(struct fs *fs, const char *file, const char *dir, int64_t *gen)
{
	struct gcs_error e = {0};
	struct gcs_list_page page;
	int rc = gcs_list(fs->gcs, dir, "/", NULL, 1, &page, &e);
	if (rc < 0)
		return fs_gcs_fail("rename", &e);
	int is_dir = page.nitems || page.nprefixes;
	gcs_list_page_free(&page);
	if (is_dir)
		return INODE_DIR + 1;
	struct gcs_object o;
	rc = gcs_object_stat(fs->gcs, file, &o, &e);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return fs_gcs_fail("rename", &e);
	*gen = o.generation;
	rc = (o.is_symlink ? INODE_SYMLINK : INODE_FILE) + 1;
	gcs_object_clear(&o);
	return rc;
}

/* Upload what a file open here holds, so the object is what the program wrote. */
static int flush_pending(struct fs *fs, struct inode *i, int64_t *gen)
{
	pthread_mutex_lock(&fs->inodes.lock);
	struct writer *w = i->writer;
	if (w)
		writer_ref(w);
	pthread_mutex_unlock(&fs->inodes.lock);
	if (!w)
		return 0;
	struct gcs_error e = {0};
	struct gcs_object obj = {0};
	int rc = writer_publish(w, &obj, &e);
	if (rc < 0)
		rc = fs_gcs_fail("rename", &e);
	pthread_mutex_lock(&fs->inodes.lock);
	if (rc == 0 && obj.name)
		fs_apply_object(fs, i, &obj);
	if (rc == 0)
		*gen = i->generation;
	pthread_mutex_unlock(&fs->inodes.lock);
	writer_unref(w);
	gcs_object_clear(&obj);
	return rc;
}

/* Inodes open for writing under directory dir, each with a reference (table lock held). */
static struct inode **writers_under(struct fs *fs, struct inode *dir, size_t *n)
{
	struct inode_table *t = &fs->inodes;
	struct inode **out = NULL;
	size_t cap = 0;
	*n = 0;
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct inode *i = t->by_ino[b]; i; i = i->next_ino) {
			if (!i->writer)
				continue;
			struct inode *p = i->parent;
			while (p && p != dir)
				p = p->parent;
			if (!p)
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 8;
				out = xrealloc(out, cap * sizeof(*out));
			}
			inode_ref(i);
			out[(*n)++] = i;
		}
	return out;
}

/* After a directory moved: its open files now publish under their new names. */
static void writers_follow(struct fs *fs, struct inode **list, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		struct inode *i = list[k];
		struct buf name = BUF_INIT;
		struct gcs_object obj = {0};
		struct gcs_error e = {0};
		pthread_mutex_lock(&fs->inodes.lock);
		struct writer *w = i->writer;
		if (w)
			writer_ref(w);
		pthread_mutex_unlock(&fs->inodes.lock);
		if (w && fs_object_name(fs, i, 0, &name) == 0) {
			int64_t gen = 0;
			if (gcs_object_stat(fs->gcs, name.data, &obj, &e) == 0)
				gen = obj.generation;
			writer_renamed(w, name.data, gen);
		}
		writer_unref(w);
		gcs_object_clear(&obj);
		buf_free(&name);
	}
}

static void writers_release(struct fs *fs, struct inode **list, size_t n)
{
	pthread_mutex_lock(&fs->inodes.lock);
	for (size_t k = 0; k < n; k++)
		inode_unref(&fs->inodes, list[k]);
	pthread_mutex_unlock(&fs->inodes.lock);
	free(list);
}

static int rename_file(struct fs *fs, const char *src, int64_t src_gen, const char *dst,
		       struct gcs_object *out)
{
	struct gcs_error e = {0};
	int rc = gcs_object_rewrite(fs->gcs, src, src_gen, dst, GCS_ANY_GENERATION, out, &e);
	if (rc < 0)
		return fs_gcs_fail("rename", &e);
	rc = gcs_object_delete(fs->gcs, src, src_gen, &e);
	if (rc < 0 && rc != -ENOENT) {
		log_error("rename: copied %s to %s but could not delete the source: %s", src, dst,
			  e.msg);
		return -EIO;
	}
	return 0;
}

static int rename_dir(struct fs *fs, const char *src, const char *dst)
{
	struct gcs_error e = {0};
	size_t slen = strlen(src);
	char **names = NULL;
	int64_t *gens = NULL;
	size_t n = 0, cap = 0, copied = 0;
	char *token = NULL;
	int rc = 0;
	do {
		struct gcs_list_page page;
		rc = gcs_list(fs->gcs, src, NULL, token, 1000, &page, &e);
		free(token);
		token = NULL;
		if (rc < 0) {
			rc = fs_gcs_fail("rename", &e);
			break;
		}
		for (size_t k = 0; k < page.nitems; k++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				names = xrealloc(names, cap * sizeof(*names));
				gens = xrealloc(gens, cap * sizeof(*gens));
			}
			names[n] = page.items[k].name;
			gens[n++] = page.items[k].generation;
			page.items[k].name = NULL;
		}
		token = page.next_page_token;
		page.next_page_token = NULL;
		gcs_list_page_free(&page);
	} while (token);
	struct buf to = BUF_INIT;
	for (size_t k = 0; rc == 0 && k < n; k++) {
		buf_reset(&to);
		buf_puts(&to, dst);
		buf_puts(&to, names[k] + slen);
		rc = gcs_name_check(to.data, to.len);
		if (rc == 0 && (rc = gcs_object_rewrite(fs->gcs, names[k], gens[k], to.data,
						       GCS_ANY_GENERATION, NULL, &e)) < 0)
			rc = fs_gcs_fail("rename", &e);
		if (rc == 0)
			copied++;
	}
	if (rc < 0) {
		/* Undo: the source stays whole, the copies go. */
		for (size_t k = 0; k < copied; k++) {
			buf_reset(&to);
			buf_puts(&to, dst);
			buf_puts(&to, names[k] + slen);
			if (gcs_object_delete(fs->gcs, to.data, GCS_ANY_GENERATION, &e) < 0)
				log_error("rename: could not remove partial copy %s: %s", to.data, e.msg);
		}
	} else {
		for (size_t k = 0; k < n; k++)
			if (gcs_object_delete(fs->gcs, names[k], gens[k], &e) < 0 && e.err != -ENOENT) {
				log_error("rename: copied but could not delete %s: %s", names[k], e.msg);
				rc = -EIO;
			}
	}
	buf_free(&to);
	for (size_t k = 0; k < n; k++)
		free(names[k]);
	free(names);
	free(gens);
	return rc;
}

void fs_op_rename(fuse_req_t req, fuse_ino_t parent_ino, const char *name, fuse_ino_t newparent_ino,
		  const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct inode *parent = fs_inode(fs, parent_ino);
	struct inode *newparent = fs_inode(fs, newparent_ino);
	struct buf sf = BUF_INIT, sd = BUF_INIT, df = BUF_INIT, dd = BUF_INIT;
	int rc = 0;
	int64_t src_gen = GCS_ANY_GENERATION, dst_gen = GCS_ANY_GENERATION;
	struct gcs_object obj = {0};
	if (flags & RENAME_EXCHANGE)
		rc = -EINVAL;
	else if (!parent || !newparent)
		rc = -ENOENT;
	if (rc == 0 && (rc = fs_child_names(fs, parent, name, &sf, &sd)) == 0)
		rc = fs_child_names(fs, newparent, newname, &df, &dd);
	struct inode *src = NULL;
	int src_kind = 0;
	if (rc == 0) {
		pthread_mutex_lock(&fs->inodes.lock);
		src = inode_child(&fs->inodes, parent, name);
		if (src) {
			inode_ref(src);
			src_kind = src->kind + 1;
			src_gen = src->generation;
		}
		pthread_mutex_unlock(&fs->inodes.lock);
		if (src && src_kind != INODE_DIR + 1)
			rc = flush_pending(fs, src, &src_gen);
		if (rc == 0 && (!src || src_gen == 0))
			rc = src_kind = probe_kind(fs, sf.data, sd.data, &src_gen);
		if (rc >= 0)
			rc = src_kind ? 0 : -ENOENT;
	}
	int dst_kind = 0;
	if (rc == 0) {
		rc = dst_kind = probe_kind(fs, df.data, dd.data, &dst_gen);
		if (rc > 0) {
			rc = 0;
			if (flags & RENAME_NOREPLACE)
				rc = -EEXIST;
			else if (src_kind == INODE_DIR + 1 && dst_kind != INODE_DIR + 1)
				rc = -ENOTDIR;
			else if (src_kind != INODE_DIR + 1 && dst_kind == INODE_DIR + 1)
				rc = -EISDIR;
			else if (dst_kind == INODE_DIR + 1) {
				rc = fs_dir_is_empty(fs, NULL, dd.data);
				rc = rc < 0 ? rc : rc == 0 ? -ENOTEMPTY : 0;
			}
		}
	}
	struct inode **open_below = NULL;
	size_t nopen_below = 0;
	if (rc == 0 && src_kind == INODE_DIR + 1 && src) {
		/* Files open under the directory: publish them so they move too. */
		pthread_mutex_lock(&fs->inodes.lock);
		open_below = writers_under(fs, src, &nopen_below);
		pthread_mutex_unlock(&fs->inodes.lock);
		for (size_t k = 0; k < nopen_below && rc == 0; k++) {
			int64_t g;
			rc = flush_pending(fs, open_below[k], &g);
		}
	}
	if (rc == 0) {
		if (src_kind == INODE_DIR + 1)
			rc = rename_dir(fs, sd.data, dd.data);
		else
			rc = rename_file(fs, sf.data, src_gen, df.data, &obj);
	}
	pthread_mutex_lock(&fs->inodes.lock);
	if (parent && newparent) {
		inode_dir_changed(parent);
		inode_dir_changed(newparent);
	}
	if (rc == 0) {
		if (!src && (src = inode_child(&fs->inodes, parent, name)))
			inode_ref(src);
		if (src) {
			inode_move(&fs->inodes, src, newparent, newname);
			if (obj.name) {
				fs_apply_object(fs, src, &obj);
				if (src->writer)
					writer_renamed(src->writer, df.data, obj.generation);
			}
		} else {
			struct inode *old = inode_child(&fs->inodes, newparent, newname);
			if (old)
				inode_unhash(&fs->inodes, old);
			/* The new name has no inode here: newparent's children are not all known. */
			inode_dir_forget(&fs->inodes, newparent);
		}
	} else if (parent && newparent && rc != -EINVAL) {
		/* A source that vanished or changed, a target that exists after
		 * all: either directory may be other than this mount thought. */
		inode_dir_forget(&fs->inodes, parent);
		inode_dir_forget(&fs->inodes, newparent);
	}
	if (src)
		inode_unref(&fs->inodes, src);
	pthread_mutex_unlock(&fs->inodes.lock);
	if (rc == 0)
		writers_follow(fs, open_below, nopen_below);
	if (open_below)
		writers_release(fs, open_below, nopen_below);
	gcs_object_clear(&obj);
	buf_free(&sf);
	buf_free(&sd);
	buf_free(&df);
	buf_free(&dd);
	fuse_reply_err(req, -rc);
}
