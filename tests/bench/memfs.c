/*
 * memfs: the benchmark's yardstick for figure 4. A FUSE filesystem whose
 * root holds COUNT files named f00000, f00001, ... (the names of the
 * benchmark's listing), answered from memory: no server, no parsing, no
 * table. `ls -l` over it costs what the kernel's FUSE layer and ls itself
 * cost for that many entries, which any FUSE mount pays on top of fetching
 * the listing.
 *
 *   memfs COUNT MOUNTPOINT      (runs in the foreground until unmounted)
 */
#define FUSE_USE_VERSION 34

#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT 600.0 /* seconds the kernel may keep entries and attributes */
#define FILE_SIZE 24

static long count;

static void attr_of(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mtime = 1700000000;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = FILE_SIZE;
	}
}

/* File k is inode k + 2 (inode 1 is the root). */
static void entry_of(long k, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = (fuse_ino_t)k + 2;
	e->attr_timeout = TIMEOUT;
	e->entry_timeout = TIMEOUT;
	attr_of(e->ino, &e->attr);
}

static long index_of(const char *name)
{
	char *end;
	if (name[0] != 'f' || strlen(name) != 6)
		return -1;
	long k = strtol(name + 1, &end, 10);
	return *end == '\0' && k >= 0 && k < count ? k : -1;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	long k = parent == FUSE_ROOT_ID ? index_of(name) : -1;
	if (k < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e;
	entry_of(k, &e);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	attr_of(ino, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void list(fuse_req_t req, size_t size, off_t off, int plus)
{
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	for (long k = off; k < count; k++) {
		char name[24];
		snprintf(name, sizeof(name), "f%05ld", k);
		struct fuse_entry_param e;
		entry_of(k, &e);
		size_t n = plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, k + 1)
				: fuse_add_direntry(req, buf + used, size - used, name, &e.attr, k + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	list(req, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	list(req, size, off, 1);
}

/* As gcsmount: readdirplus always, never only when the kernel guesses it pays. */
static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
};

int main(int argc, char **argv)
{
	if (argc != 3 || (count = strtol(argv[1], NULL, 10)) <= 0 || count > 100000) {
		fprintf(stderr, "usage: memfs COUNT MOUNTPOINT (COUNT 1..100000)\n");
		return 2;
	}
	char *fargv[] = {argv[0], "-o", "fsname=memfs", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	int rc = 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, argv[2]) == 0) {
			struct fuse_loop_config *cfg = fuse_loop_cfg_create();
			rc = fuse_session_loop_mt(se, cfg) != 0;
			fuse_loop_cfg_destroy(cfg);
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return rc;
}
