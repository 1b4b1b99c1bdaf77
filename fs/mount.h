/*
 * mount: from parsed options to a served mount, and back.
 *
 * mount_prepare() does everything that can fail before the kernel sees a
 * mount: credentials, the bucket and prefix, the spool. mount_run() mounts,
 * daemonizes unless -f, serves until unmounted or signalled, then uploads
 * what is still pending (bounded by shutdown_timeout) and tears down.
 */
#ifndef GCSMOUNT_MOUNT_H
#define GCSMOUNT_MOUNT_H

#include "fs/options.h"

struct mount_ctx;

/* Returns NULL with one line in err on failure. */
struct mount_ctx *mount_prepare(const struct mount_opts *o, char *err, size_t errlen);
/* Mount, daemonize unless -f, serve until unmounted or signalled, finish
 * the uploads. Returns the process exit status. */
int mount_run(struct mount_ctx *m);

/* The pieces mount_run is made of, for run mode (run.c). signals: install
 * libfuse's SIGTERM/SIGINT/SIGHUP handlers. mount_serve blocks until the
 * session ends, then finishes uploads within shutdown_timeout and returns
 * 0, 1 (the loop failed) or 3 (something stays in the spool). */
struct fuse_session;
struct fuse_session *mount_session_open(struct mount_ctx *m, int signals);
int mount_serve(struct mount_ctx *m, struct fuse_session *se);
void mount_session_close(struct fuse_session *se, int signals);
/* Run mode: the command exited; the final flush begins (the progress line
 * says "saving outputs" and the end leaves a summary on a terminal). */
void mount_saving_outputs(struct mount_ctx *m);
/* Uploads are still running and the process exits without waiting for them. */
void mount_abandon(struct mount_ctx *m);
/* The end of a mount's life: frees it and returns status, or, when uploads
 * were abandoned at the deadline, leaves the process at once with _exit(). */
int mount_end(struct mount_ctx *m, int status);
/* Frees nothing when uploads were abandoned at the deadline (threads still
 * use it; the process is about to exit). */
void mount_free(struct mount_ctx *m);

#endif
