/*
 * status: the `gcsmount status MOUNTPOINT` command. It asks the running
 * mount, through the extended attribute user.gcsmount.status of the
 * mount's root (see observe.h), which files the bucket does not hold
 * entirely yet, and prints them.
 *
 * Exit status: 0 when everything written is in the bucket, 1 when something
 * is pending (a Kubernetes preStop hook loops until 0), 2 for a usage error
 * or a MOUNTPOINT that is not the root of a running gcsmount mount.
 */
#ifndef GCSMOUNT_STATUS_H
#define GCSMOUNT_STATUS_H

#include <stddef.h>
#include <stdio.h>

/* argv[0] is "status". */
int status_main(int argc, char **argv);

/* Print the status text (as the attribute holds it) as a table on out.
 * Returns the exit status (0 or 1), or 2 when the text is not a status. */
int status_print(const char *text, size_t len, FILE *out);

#endif
