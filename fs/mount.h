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
/* Returns the process exit status. */
int mount_run(struct mount_ctx *m);
void mount_free(struct mount_ctx *m);

#endif
