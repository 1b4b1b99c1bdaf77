/*
 * ops_dir: directory listing (readdir, readdirplus), mkdir and rmdir.
 *
 * A listing is objects.list with delimiter '/', fetched a page at a time as
 * the reader advances (a directory of 100,000 entries is never held whole
 * before the first entries go out). readdirplus fills attributes from the
 * listing itself, so `ls -l` costs list pages, not a request per entry.
 * Pages are fetched ahead of the reader on a thread of the handle's own
 * (fs/lister.c), each asked for as soon as the one before names it, so a
 * long listing costs about the time of its requests alone. Files created
 * here and not yet uploaded are listed too.
 */
#include "fs/fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/log.h"
#include "fs/lister.h"

struct dir_handle {
	struct fs_open open;        /* first: on the mount's list of open handles */
	pthread_mutex_t lock;       /* guards everything below */
	struct inode *dir;          /* holds a reference */
	char *prefix;               /* object prefix of the directory, "" or "p/a/" */
	struct fs_dirents ents;
	char *next_token;           /* where a new lister starts: after a failed page, that page */
	int started;                /* the first page was asked for */
	double started_at;          /* then (monotonic) */
	uint64_t changes;           /* the directory's change count then */
	int bad;                    /* a page held entries that could not be read */
	int done;                   /* 1: listing complete, 2: local files added too */
	struct lister *lister;      /* pages fetched ahead; NULL before the first and after a failure */
	struct fs_dirents held;     /* files that a later page may show to be directories too */
	const char *page_last;      /* while a page is taken in: its last name past the prefix, */
	int page_more;              /* and whether pages follow it */
	char **seen;                /* names emitted, open addressing, for dedup */
	size_t seen_cap, seen_n;
};

static int seen_add(struct dir_handle *d, const char *name);

/* Room in the table for `more` names beyond those in it, made in one step. */
static void seen_reserve(struct dir_handle *d, size_t more)
{
	size_t cap = d->seen_cap ? d->seen_cap : 256;
	while ((d->seen_n + more) * 2 >= cap)
		cap *= 2;
	if (cap == d->seen_cap)
		return;
	size_t old_cap = d->seen_cap;
	char **old = d->seen;
	d->seen_cap = cap;
	d->seen = xcalloc(d->seen_cap, sizeof(*d->seen));
	d->seen_n = 0;
	for (size_t k = 0; k < old_cap; k++)
		if (old[k])
			seen_add(d, old[k]);
	free(old);
}

/* Returns 1 if name was already there. */
static int seen_add(struct dir_handle *d, const char *name)
{
	seen_reserve(d, 1);
	size_t k = (size_t)hash_str(0, name) & (d->seen_cap - 1);
	while (d->seen[k]) {
		if (strcmp(d->seen[k], name) == 0)
			return 1;
		k = (k + 1) & (d->seen_cap - 1);
	}
	d->seen[k] = (char *)name;
	d->seen_n++;
	return 0;
}

/*
 * Whether name + "/" sorts after last. A page lists objects and prefixes in
 * one order, so the prefix "y/" of an object "y" comes after every name
 * "y-..." between them: when this page ends before "y/", a later page may
 * still show "y" to be a directory as well.
 */
static int dir_may_follow(const char *name, const char *last)
{
	size_t n = strlen(name);
	int c = strncmp(name, last, n);
	if (c != 0)
		return c > 0;
	return (unsigned char)'/' > (unsigned char)last[n];
}

/* Takes de over; a name listed already (a file named like a directory) is
 * dropped. A file whose directory twin may be on a later page waits for it. */
static void add_entry(void *arg, struct fs_dirent *de)
{
	struct dir_handle *d = arg;
	if (de->kind != INODE_DIR && d->page_more && d->page_last &&
	    dir_may_follow(de->name, d->page_last)) {
		fs_dirents_push(&d->held, de);
		return;
	}
	if (seen_add(d, de->name)) {
		if (de->obj.name)
			log_warn("'%s' is both an object and a directory; showing the directory",
				 de->obj.name);
		free(de->name);
		gcs_object_clear(&de->obj);
		return;
	}
	fs_dirents_push(&d->ents, de);
}

/* The page's last name (items and prefixes are each in order), past plen. */
static const char *page_last(const struct gcs_list_page *page, size_t plen)
{
	const char *a = page->nitems ? page->items[page->nitems - 1].name : NULL;
	const char *b = page->nprefixes ? page->prefixes[page->nprefixes - 1] : NULL;
	const char *last = !a ? b : !b ? a : strcmp(a, b) > 0 ? a : b;
	return last && strlen(last) >= plen ? last + plen : NULL;
}

static int fetch_page(struct fs *fs, struct dir_handle *d)
{
	struct gcs_error e = {0};
	if (!d->started) {
		pthread_mutex_lock(&fs->inodes.lock);
		d->changes = inode_dir(d->dir)->changes;
		pthread_mutex_unlock(&fs->inodes.lock);
		d->started_at = inode_now();
		d->started = 1;
	}
	if (!d->lister)
		d->lister = lister_start(fs->gcs, d->prefix, d->next_token, FS_LIST_PAGE);
	struct buf body = BUF_INIT;
	struct gcs_list_page page;
	int more = 0;
	char *asked = NULL;
	int rc = lister_next(d->lister, &body, &more, &asked, &e);
	if (rc == 0)
		rc = gcs_list_read(d->prefix, &body, &page, &e);
	buf_free(&body);
	if (rc < 0) {
		/* A retry asks for this page again, with a lister of its own. */
		lister_stop(d->lister);
		d->lister = NULL;
		free(d->next_token);
		d->next_token = asked;
		rc = fs_gcs_fail("readdir", &e);
		/* A listing is never "not found" (that is the bucket gone), and
		 * getdents failing with ENOENT reads as the end of the directory
		 * to glibc: the listing would look whole. */
		return rc == -ENOENT ? -EIO : rc;
	}
	free(asked);
	seen_reserve(d, page.nitems + page.nprefixes + d->held.n);
	d->page_more = more;
	d->page_last = page_last(&page, strlen(d->prefix));
	fs_page_entries(d->dir, d->prefix, &page, add_entry, d);
	/* Files held from earlier pages come after this page's directories. */
	struct fs_dirents held = d->held;
	memset(&d->held, 0, sizeof(d->held));
	for (size_t k = 0; k < held.n; k++) {
		add_entry(d, fs_dirents_at(&held, k));
		memset(fs_dirents_at(&held, k), 0, sizeof(struct fs_dirent));
	}
	fs_dirents_free(&held);
	d->page_last = NULL;
	d->done = !more;
	d->bad |= page.nbad > 0;
	if (d->done && !d->bad) {
		/* The whole directory, paged to its end: its children are known. */
		pthread_mutex_lock(&fs->inodes.lock);
		fs_dir_take_listing(fs, d->dir, &d->ents, d->changes,
				    d->started_at + fs->opts->negative_ttl);
		pthread_mutex_unlock(&fs->inodes.lock);
	}
	gcs_list_page_free(&page);
	return 0;
}

/* Files created here that are not in the bucket yet. */
static void add_local_children(struct fs *fs, struct dir_handle *d)
{
	pthread_mutex_lock(&fs->inodes.lock);
	for (struct inode *i = d->dir->children; i; i = i->sib_next)
		if (i->writer && i->generation == 0) {
			struct fs_dirent de = {.name = xstrdup(i->name), .kind = i->kind};
			add_entry(d, &de);
		}
	pthread_mutex_unlock(&fs->inodes.lock);
}

static void dir_drop_open(struct fs *fs, struct fs_open *o);
static void dir_free(struct fs *fs, struct dir_handle *d);

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct inode *i = fs_inode(fs, ino);
	struct buf prefix = BUF_INIT;
	int rc = i ? fs_object_name(fs, i, 1, &prefix) : -ENOENT;
	if (rc < 0) {
		buf_free(&prefix);
		fuse_reply_err(req, -rc);
		return;
	}
	struct dir_handle *d = xcalloc(1, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->prefix = buf_detach(&prefix);
	pthread_mutex_lock(&fs->inodes.lock);
	d->dir = i;
	inode_ref(i);
	fs_open_link(fs, &d->open, dir_drop_open);
	pthread_mutex_unlock(&fs->inodes.lock);
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dir_free(fs, d); /* interrupted: the kernel will not send releasedir */
}

static void dir_free(struct fs *fs, struct dir_handle *d)
{
	lister_stop(d->lister);
	pthread_mutex_lock(&fs->inodes.lock);
	fs_open_unlink(&d->open);
	inode_unref(&fs->inodes, d->dir);
	pthread_mutex_unlock(&fs->inodes.lock);
	fs_dirents_free(&d->ents);
	fs_dirents_free(&d->held);
	free(d->seen);
	free(d->prefix);
	free(d->next_token);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static void dir_drop_open(struct fs *fs, struct fs_open *o)
{
	dir_free(fs, (struct dir_handle *)o);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_free(fs_of(req), (struct dir_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct fs *fs = fs_of(req);
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	size_t used = 0;
	int rc = 0;
	/* The reply's own buffer, not the handle's: once the kernel has it, the
	 * directory may be closed and d freed while writev is still returning. */
	char *out = xmalloc(size);
	pthread_mutex_lock(&d->lock);
	for (size_t k = (size_t)off;; k++) {
		const char *name;
		struct stat st;
		memset(&st, 0, sizeof(st));
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		struct inode *child = NULL;
		if (k < 2) {
			name = k == 0 ? "." : "..";
			st.st_ino = k == 0 ? ino : FUSE_ROOT_ID;
			st.st_mode = S_IFDIR;
		} else {
			size_t idx = k - 2;
			/* Entries in hand go out before waiting for the next page:
			 * the kernel takes them in while that page arrives. */
			if (idx >= d->ents.n && !d->done && (size_t)k > (size_t)off && idx > 0)
				break;
			while (idx >= d->ents.n && !d->done && rc == 0)
				rc = fetch_page(fs, d);
			if (rc < 0)
				break;
			if (idx == d->ents.n && d->done == 1) {
				size_t before = d->ents.n;
				add_local_children(fs, d);
				d->done = 2; /* local ones added once */
				if (d->ents.n == before)
					break;
			}
			if (idx >= d->ents.n)
				break;
			struct fs_dirent *de = fs_dirents_at(&d->ents, idx);
			name = de->name;
			pthread_mutex_lock(&fs->inodes.lock);
			child = inode_child(&fs->inodes, d->dir, name);
			if (child && child->kind != de->kind && !child->writer) {
				/* It changed type in the bucket. */
				inode_unhash(&fs->inodes, child);
				inode_dir_forget(&fs->inodes, d->dir);
				child = NULL;
			}
			if (plus) {
				if (!child)
					child = inode_child_add(&fs->inodes, d->dir, name,
								de->kind);
				if (de->obj.name && !child->writer)
					fs_apply_listed(fs, child, &de->obj);
				else if (de->kind == INODE_DIR)
					child->attr_expires = inode_now() + fs->opts->stat_ttl;
				fs_fill_entry(fs, child, &e);
			} else {
				st.st_ino = child ? child->ino : (fuse_ino_t)-1;
				st.st_mode = de->kind == INODE_DIR ? S_IFDIR
					   : de->kind == INODE_SYMLINK ? S_IFLNK : S_IFREG;
			}
			pthread_mutex_unlock(&fs->inodes.lock);
		}
		size_t n;
		if (plus) {
			if (k < 2)
				e.attr = st; /* ino 0 in e: the kernel makes no dentry */
			n = fuse_add_direntry_plus(req, out + used, size - used, name, &e, (off_t)k + 1);
		} else {
			n = fuse_add_direntry(req, out + used, size - used, name, &st, (off_t)k + 1);
		}
		if (n > size - used) {
			if (plus && child) {
				/* Not sent: take back the lookup fs_fill_entry counted. */
				pthread_mutex_lock(&fs->inodes.lock);
				inode_forget(&fs->inodes, child, 1);
				pthread_mutex_unlock(&fs->inodes.lock);
			}
			break;
		}
		used += n;
	}
	pthread_mutex_unlock(&d->lock); /* before the reply, after which d may be gone */
	if (rc < 0 && used == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, out, used);
	free(out);
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode)
{
	(void)mode;
	struct fs *fs = fs_of(req);
	struct inode *parent = fs_inode(fs, parent_ino);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int rc = fs_create_object(fs, parent, name, 1, "", 0, &now, NULL, "mkdir");
	if (rc < 0) {
		if (rc == -EEXIST)
			fs_dir_doubt(fs, parent); /* it looked absent */
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param ep;
	pthread_mutex_lock(&fs->inodes.lock);
	inode_dir_changed(parent);
	struct inode *old = inode_child(&fs->inodes, parent, name);
	if (old && old->kind != INODE_DIR) {
		inode_unhash(&fs->inodes, old);
		old = NULL;
	}
	struct inode *i = inode_child_get(&fs->inodes, parent, name, INODE_DIR);
	i->mtime = now;
	i->attr_expires = inode_now() + fs->opts->stat_ttl;
	fs_fill_entry(fs, i, &ep);
	if (!old) /* a new inode: nothing can be known under it but that it is empty */
		fs_dir_created(fs, i);
	pthread_mutex_unlock(&fs->inodes.lock);
	fuse_reply_entry(req, &ep);
}

/* Anything under prefix besides the placeholder itself, in the bucket or here? */
int fs_dir_is_empty(struct fs *fs, struct inode *dir, const char *prefix)
{
	struct gcs_list_page page;
	struct gcs_error e = {0};
	int rc = gcs_list(fs->gcs, prefix, "/", NULL, 2, &page, &e);
	if (rc < 0)
		return fs_gcs_fail("rmdir", &e);
	int empty = page.nprefixes == 0;
	for (size_t k = 0; k < page.nitems; k++) {
		const struct gcs_object *o = &page.items[k];
		if (strcmp(o->name, prefix) != 0) {
			empty = 0;
		} else if (o->size > 0) {
			/* A placeholder with bytes in it is data someone wrote:
			 * removing the directory would lose it unseen. */
			log_warn("rmdir: '%s' holds %llu bytes; not deleting it", o->name,
				 (unsigned long long)o->size);
			empty = 0;
		}
	}
	gcs_list_page_free(&page);
	if (empty && dir) {
		pthread_mutex_lock(&fs->inodes.lock);
		for (struct inode *i = dir->children; i; i = i->sib_next)
			if (i->writer && i->generation == 0)
				empty = 0;
		pthread_mutex_unlock(&fs->inodes.lock);
	}
	return empty;
}

void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct inode *parent = fs_inode(fs, parent_ino);
	struct buf obj_name = BUF_INIT;
	struct gcs_error e = {0};
	int rc = parent ? fs_child_name(fs, parent, name, 1, &obj_name) : -ENOENT;
	struct inode *dir = NULL;
	if (rc == 0) {
		pthread_mutex_lock(&fs->inodes.lock);
		dir = inode_child(&fs->inodes, parent, name);
		pthread_mutex_unlock(&fs->inodes.lock);
		rc = fs_dir_is_empty(fs, dir, obj_name.data);
		rc = rc < 0 ? rc : rc == 0 ? -ENOTEMPTY : 0;
	}
	if (rc == 0) {
		rc = gcs_object_delete(fs->gcs, obj_name.data, GCS_ANY_GENERATION, &e);
		if (rc == -ENOENT)
			rc = 0; /* an implicit directory has no placeholder */
		else if (rc < 0)
			rc = fs_gcs_fail("rmdir", &e);
	}
	buf_free(&obj_name);
	if (rc == -ENOTEMPTY)
		fs_dir_doubt(fs, dir); /* it may have looked empty here */
	if (rc == 0) {
		pthread_mutex_lock(&fs->inodes.lock);
		inode_dir_changed(parent);
		dir = inode_child(&fs->inodes, parent, name);
		if (dir) {
			inode_dir_forget(&fs->inodes, dir);
			inode_unhash(&fs->inodes, dir);
		}
		pthread_mutex_unlock(&fs->inodes.lock);
	}
	fuse_reply_err(req, -rc);
}
