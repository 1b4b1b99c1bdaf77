/*
 * bdi: the kernel's read-ahead window for this mount.
 *
 * A FUSE mount starts with the kernel's default read-ahead of 128 KiB, so a
 * sequential reader's data arrives in 128 KiB requests, each a round trip
 * through the kernel. Raising the mount's backing device read_ahead_kb lets
 * the kernel ask for 1 MiB at a time. It needs a writable /sys (root on a
 * host, a privileged container); elsewhere it is skipped, with a debug line.
 */
#ifndef GCSMOUNT_BDI_H
#define GCSMOUNT_BDI_H

/* Set read_ahead_kb of the FUSE mount on mountpoint (the newest one there;
 * an absolute path without symlinks: resolving it after the mount would ask
 * the mount itself, which does not serve yet). 0, or a negative errno. */
int bdi_set_read_ahead(const char *mountpoint, unsigned kib);

#endif
