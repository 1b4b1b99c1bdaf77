/*
 * dircache: lookups answered from what a directory is known to hold.
 *
 * A lookup of a name the inode table does not have costs two requests (is
 * "name" an object, is anything under "name/"). When the mount knows every
 * child of the directory, a name that is not among them does not exist, and
 * the answer costs nothing: `cp -r` into a new directory is one upload per
 * file, and stat of every file of a small directory is one listing.
 *
 * A directory learns its children in three ways:
 *  - a readdir pages the listing to its end, with no change by this mount
 *    in that directory meanwhile;
 *  - this mount's mkdir creates it: its placeholder did not exist (the
 *    insert is conditional on that) and the lookup just before found
 *    nothing under it, so it starts empty;
 *  - a lookup misses in a directory not known yet: the first page of the
 *    directory's listing (up to LIST_PAGE entries) goes out in the same
 *    round trip as the two usual requests, and when that page is the whole
 *    directory its entries, with their attributes, enter the table. A
 *    directory larger than a page is not listed again by lookups for
 *    type_ttl: a stat never pays for a big listing more than once.
 * From then on the mount's own create, mkdir, symlink, unlink, rmdir and
 * rename keep the children exact.
 *
 * How long it is trusted. A name missing from the knowledge is a negative
 * answer, which the user bounds with negative_ttl, so:
 *  - knowledge that came from a listing is trusted for negative_ttl from
 *    when the listing was asked for, and the negative entries the kernel
 *    gets from it are cut to what is left of that time; a name created
 *    behind the mount's back shows within negative_ttl, as before;
 *  - a directory this mount created is trusted for type_ttl from its
 *    mkdir: it was empty then and only this mount has changed it since,
 *    unless another writer writes into a directory this mount has just
 *    made, which is the several-writers case that the caches never promised
 *    to see at once (positive entries are trusted for type_ttl too). A job
 *    writing its outputs into a directory it made does not list it again
 *    every negative_ttl.
 * negative_ttl=0 turns all of this off. Knowledge is dropped at once when
 * anything shows it wrong: an upload of a new file that finds the object
 * there (412), a mkdir or symlink that finds the name taken, an unlink,
 * rename, stat or lookup that finds a known name gone or of another type.
 * The conflicting upload itself fails with ESTALE and the other writer's
 * object stays, as any conflict does.
 */
#include "fs/fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "fs/observe.h"

/* A component GCS can hold but a directory entry cannot: skipped. */
static int bad_component(const char *s, size_t len)
{
	return len == 0 || len > FS_NAME_MAX || memchr(s, '/', len) ||
	       (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
}

/* Names of the mount's own at its root: temporary objects, and the status
 * file, which an object of that name must not stand in for. */
static int hidden(struct inode *dir, const char *s, size_t len)
{
	return dir->ino == FUSE_ROOT_ID &&
	       ((len == strlen(FS_TMP_DIR) && memcmp(s, FS_TMP_DIR, len) == 0) ||
		(len == strlen(STATUS_FILE) && memcmp(s, STATUS_FILE, len) == 0));
}

/* Names GCS holds that no directory entry can carry are said once per page. */
static void note_unshown(const char *example, size_t n)
{
	if (n)
		log_warn("%zu name(s) in the bucket cannot be shown (a component empty, '.', '..' "
			 "or over 255 bytes), such as '%s'", n, example);
}

void fs_page_entries(struct inode *dir, const char *prefix, struct gcs_list_page *page,
		     fs_dirent_fn add, void *arg)
{
	size_t plen = strlen(prefix);
	const char *unshown = NULL;
	size_t nunshown = 0;
	/* Directories first, so a clash with a file of the same name shows the directory. */
	for (size_t k = 0; k < page->nprefixes; k++) {
		if (strncmp(page->prefixes[k], prefix, plen) != 0)
			continue;
		const char *p = page->prefixes[k] + plen;
		size_t len = strlen(p);
		if (len && p[len - 1] == '/')
			len--;
		if (hidden(dir, p, len))
			continue;
		if (bad_component(p, len)) {
			unshown = page->prefixes[k];
			nunshown++;
			continue;
		}
		struct fs_dirent de = {.name = xstrndup(p, len), .kind = INODE_DIR};
		add(arg, &de);
	}
	for (size_t k = 0; k < page->nitems; k++) {
		struct gcs_object *o = &page->items[k];
		if (strncmp(o->name, prefix, plen) != 0)
			continue;
		const char *p = o->name + plen;
		if (!*p)
			continue; /* the directory's placeholder itself */
		if (hidden(dir, p, strlen(p))) {
			log_warn("'%s' is not shown: the mount keeps that name for its own", o->name);
			continue;
		}
		if (bad_component(p, strlen(p))) {
			unshown = o->name;
			nunshown++;
			continue;
		}
		struct fs_dirent de = {.name = xstrdup(p),
				       .kind = o->is_symlink ? INODE_SYMLINK : INODE_FILE,
				       .obj = *o};
		memset(o, 0, sizeof(*o));
		add(arg, &de);
	}
	note_unshown(unshown, nunshown);
}

void fs_apply_listed(struct fs *fs, struct inode *i, const struct gcs_object *o)
{
	/* Generations only grow: a smaller one is what the listing saw before
	 * this mount's own upload landed. */
	if (o->generation >= i->generation)
		fs_apply_object(fs, i, o);
}

int fs_dir_take_listing(struct fs *fs, struct inode *dir, const struct fs_dirents *ents,
			uint64_t changes, double until)
{
	struct inode_table *t = &fs->inodes;
	struct inode_dir *d = inode_dir(dir);
	if (fs->opts->negative_ttl <= 0 || d->changes != changes ||
	    (!dir->hashed && dir != t->root) || until <= inode_now())
		return 0; /* changed here meanwhile, removed, or old news already */
	/* A child the table has and the listing lacks is a name created or
	 * removed since it was asked for: not conclusive. Files being written
	 * here are children whatever the bucket holds yet. */
	uint32_t listed = inode_mark(t);
	for (size_t k = 0; k < ents->n; k++) {
		struct inode *c = inode_child(t, dir, fs_dirents_at(ents, k)->name);
		if (c)
			c->mark = listed;
	}
	for (struct inode *c = dir->children; c; c = c->sib_next)
		if (c->mark != listed && !c->writer)
			return 0;
	uint32_t added = inode_mark(t);
	double now = inode_now();
	for (size_t k = 0; k < ents->n; k++) {
		const struct fs_dirent *de = fs_dirents_at(ents, k);
		struct inode *c = inode_child(t, dir, de->name);
		if (c && c->mark == added)
			continue; /* a file named like a directory listed before it */
		if (c && c->kind != de->kind && !c->writer) {
			inode_unhash(t, c);
			c = NULL;
		}
		c = inode_child_get(t, dir, de->name, de->kind);
		c->mark = added;
		if (c->writer)
			continue; /* what is written here is newer than the bucket */
		if (de->obj.name)
			fs_apply_listed(fs, c, &de->obj);
		else if (de->kind == INODE_DIR)
			c->attr_expires = now + fs->opts->stat_ttl;
	}
	inode_dir_set_complete(t, dir, until);
	return 1;
}

void fs_dir_created(struct fs *fs, struct inode *dir)
{
	if (fs->opts->negative_ttl <= 0 || dir->children)
		return;
	inode_dir_set_complete(&fs->inodes, dir, inode_now() + fs->opts->type_ttl);
}

double fs_dir_negative_ttl(struct fs *fs, struct inode *dir, double now)
{
	double ttl = fs->opts->negative_ttl;
	if (inode_dir_complete(dir, now) && dir->dir->complete_until - now < ttl)
		ttl = dir->dir->complete_until - now;
	return ttl;
}

void fs_dir_doubt(struct fs *fs, struct inode *dir)
{
	if (!dir)
		return;
	pthread_mutex_lock(&fs->inodes.lock);
	inode_dir_forget(&fs->inodes, dir);
	pthread_mutex_unlock(&fs->inodes.lock);
}

void fs_dir_doubt_parent(struct fs *fs, struct inode *i)
{
	pthread_mutex_lock(&fs->inodes.lock);
	if (i->parent && i->hashed)
		inode_dir_forget(&fs->inodes, i->parent);
	pthread_mutex_unlock(&fs->inodes.lock);
}

int fs_dir_list_begin(struct fs *fs, struct inode *dir, double now, uint64_t *changes)
{
	if (fs->opts->negative_ttl <= 0 || dir->kind != INODE_DIR)
		return 0;
	struct inode_dir *d = inode_dir(dir);
	if (d->listing || d->no_list_until > now)
		return 0; /* another lookup lists it, or it is too big, or was in flux */
	d->listing = 1;
	*changes = d->changes;
	return 1;
}

static void collect(void *arg, struct fs_dirent *de)
{
	fs_dirents_push(arg, de);
}

void fs_dir_list_end(struct fs *fs, struct inode *dir, struct gcs_lookup_listing *l,
		     uint64_t changes, double asked_at)
{
	struct inode_dir *d = inode_dir(dir);
	d->listing = 0;
	if (!l->ok)
		return;
	if (l->page.next_page_token || l->page.nbad) {
		d->no_list_until = inode_now() + fs->opts->type_ttl;
	} else {
		struct fs_dirents a = {0};
		fs_page_entries(dir, l->prefix, &l->page, collect, &a);
		if (!fs_dir_take_listing(fs, dir, &a, changes, asked_at + fs->opts->negative_ttl))
			/* Not conclusive (changed meanwhile): not again at every miss. */
			d->no_list_until = inode_now() + fs->opts->negative_ttl;
		fs_dirents_free(&a);
	}
	gcs_list_page_free(&l->page);
	l->ok = 0;
}
