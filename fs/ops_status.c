/*
 * ops_status: the status file. The mount's root has one entry that is never
 * listed: .gcsmount-status, a read-only file whose content is the status
 * text of observe.h (what is not yet durable), made afresh at each open.
 * `gcsmount status MOUNTPOINT` reads it; a preStop hook can loop on that.
 * It is a file rather than an extended attribute because answering getxattr
 * at all would cost `ls -l` a round trip to this process per entry.
 */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "fs/observe.h"

/* Names and paths go on one line each. */
static void put_line_text(struct buf *out, const char *s)
{
	for (; *s; s++)
		buf_putc(out, *s == '\n' || *s == '\r' ? ' ' : *s);
}

void fs_status_text(struct fs *fs, struct buf *out, size_t max)
{
	struct pending_list l;
	pending_collect(fs, &l);
	buf_puts(out, "gcsmount-status 1\nsource gs://");
	put_line_text(out, gcs_client_bucket(fs->gcs));
	if (fs->opts && fs->opts->prefix && fs->opts->prefix[0]) {
		buf_putc(out, '/');
		put_line_text(out, fs->opts->prefix);
	}
	buf_printf(out, "\npending %zu\n", l.n);
	struct buf line = BUF_INIT;
	for (size_t k = 0; k < l.n; k++) {
		const struct pending_file *f = &l.files[k];
		buf_reset(&line);
		buf_printf(&line, "file %llu %llu %.1f %s ", (unsigned long long)f->size,
			   (unsigned long long)f->unpublished, f->age, f->state);
		put_line_text(&line, f->path);
		buf_putc(&line, '\n');
		if (f->error) {
			buf_puts(&line, "error ");
			put_line_text(&line, f->error);
			buf_putc(&line, '\n');
		}
		if (out->len + line.len > max)
			break; /* "pending" still counts them all */
		buf_append(out, line.data, line.len);
	}
	buf_free(&line);
	pending_free(&l);
}

int fs_status_is(fuse_ino_t parent, const char *name)
{
	return parent == FUSE_ROOT_ID && strcmp(name, STATUS_FILE) == 0;
}

static void status_attr(struct fs *fs, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FS_STATUS_INO;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_uid = fs->opts->uid;
	st->st_gid = fs->opts->gid;
	st->st_mtim = fs->started;
	st->st_ctim = st->st_atim = st->st_mtim;
}

void fs_status_lookup(fuse_req_t req)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = FS_STATUS_INO;
	e.generation = 1;
	status_attr(fs_of(req), &e.attr);
	/* Never cached: nothing to forget (the kernel's lookups of it are not counted). */
	fuse_reply_entry(req, &e);
}

void fs_status_getattr(fuse_req_t req)
{
	struct stat st;
	status_attr(fs_of(req), &st);
	fuse_reply_attr(req, &st, 0);
}

void fs_status_open(fuse_req_t req, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct buf *text = xcalloc(1, sizeof(*text));
	fs_status_text(fs_of(req), text, STATUS_TEXT_MAX);
	fi->fh = (uint64_t)(uintptr_t)text;
	fi->direct_io = 1; /* its size is not known to the kernel */
	if (fuse_reply_open(req, fi) == -ENOENT) {
		buf_free(text);
		free(text);
	}
}

void fs_status_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct buf *text = (struct buf *)(uintptr_t)fi->fh;
	if ((size_t)off >= text->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = text->len - (size_t)off < size ? text->len - (size_t)off : size;
	/* Reply from a copy: once the reply is in, the reader may close at once,
	 * and the release can free the text while writev() is still returning
	 * here (AddressSanitizer checks the buffer after the call). */
	char *copy = xmalloc(n);
	memcpy(copy, text->data + off, n);
	fuse_reply_buf(req, copy, n);
	free(copy);
}

void fs_status_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct buf *text = (struct buf *)(uintptr_t)fi->fh;
	buf_free(text);
	free(text);
	fuse_reply_err(req, 0);
}
