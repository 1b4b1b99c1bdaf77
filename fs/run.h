/*
 * run: the one-line container entrypoint.
 *
 *   gcsmount run [-o OPTS] gs://BUCKET[/PREFIX] MOUNTPOINT -- COMMAND [ARGS...]
 *
 * Mounts (creating MOUNTPOINT if needed), runs COMMAND once the mount is
 * there, forwards SIGTERM, SIGINT, SIGHUP and SIGQUIT to it, and when it
 * exits unmounts after every upload has finished (bounded by
 * shutdown_timeout). Exits with the command's status (128+N when a signal
 * N ended it), or RUN_EXIT_UNSAVED with one line on stderr when outputs
 * could not all be saved. $VAR and ${VAR} in BUCKET/PREFIX are taken from
 * the environment, so an entrypoint can name the run by an id it has.
 */
#ifndef GCSMOUNT_RUN_H
#define GCSMOUNT_RUN_H

#include <stddef.h>

#define RUN_EXIT_UNSAVED 75

/* argv[0] is "run". Returns the process exit status. */
int run_main(int argc, char **argv);

/* Expand $VAR and ${VAR} from the environment; -ENOENT names an unset one in err. */
int run_expand_env(const char *in, char **out, char *err, size_t errlen);

#endif
