/*
 * options: the command line, a contract scripts, mount(8) and pod specs
 * rely on:
 *
 *   gcsmount [-f] [-o OPT[,OPT...]] gs://BUCKET[/PREFIX] MOUNTPOINT
 *
 * -o may stand before or after the positional arguments (mount(8) calls a
 * helper as `gcsmount SRC DIR -o OPTS`). Sizes take K/M/G suffixes. An
 * unknown or malformed option is an error (exit 2 in main).
 * opts_parse() is pure: it touches no file and no network.
 */
#ifndef GCSMOUNT_OPTIONS_H
#define GCSMOUNT_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"

struct mount_opts {
	char *bucket;
	char *prefix;            /* "" or "a/b" (no leading or trailing '/') */
	char *mountpoint;
	int foreground;
	int show_help;
	int show_version;

	char *endpoint;          /* NULL: STORAGE_EMULATOR_HOST, else Google's */
	int anonymous;
	char *key_file;
	char *token_file;
	uid_t uid;
	gid_t gid;
	mode_t file_mode;
	mode_t dir_mode;
	int debug;
	uint64_t chunk_size;
	uint64_t write_buffer;
	char *spool_dir;
	uint64_t read_ahead;
	double stat_ttl;
	double type_ttl;
	double negative_ttl;
	double retry_deadline;
	double shutdown_timeout;
	double publish_interval;
	char *metrics;
	int progress;            /* progress line: -1 when stderr is a terminal, 0 off, 1 on */
	struct buf fuse_opts;    /* libfuse's own options, comma-joined */
};

/* Fill defaults (uid/gid of the caller, modes, sizes, TTLs). */
void opts_defaults(struct mount_opts *o);
/* Returns 0, or -EINVAL with one line in err. */
int opts_parse(int argc, char **argv, struct mount_opts *o, char *err, size_t errlen);
/* Parse "gs://B/P", "B/P" or "B" into bucket and prefix. */
int opts_parse_source(const char *src, char **bucket, char **prefix, char *err, size_t errlen);
/* "16M" → 16777216. Returns -EINVAL on garbage or overflow. */
int opts_parse_size(const char *s, uint64_t *out);
void opts_free(struct mount_opts *o);

#endif
