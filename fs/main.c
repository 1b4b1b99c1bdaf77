/*
 * main: the gcsmount command.
 *
 *   gcsmount [-f] [-o OPT[,OPT...]] gs://BUCKET[/PREFIX] MOUNTPOINT
 *
 * Exit status: 0 after a clean unmount, 1 when the mount could not be made
 * (one line on stderr names the cause), 2 for a usage error, 3 when data
 * written could not all be uploaded before exit. `gcsmount run` exits with
 * its command's status instead (see run.h).
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "fs/mount.h"
#include "fs/options.h"
#include "fs/run.h"
#include "fs/status.h"

#ifndef GCSMOUNT_VERSION
#define GCSMOUNT_VERSION "dev"
#endif

static void usage(FILE *f)
{
	fputs("usage: gcsmount [-f] [-o OPT[,OPT...]] gs://BUCKET[/PREFIX] MOUNTPOINT\n"
	      "       gcsmount run [-o OPT,...] gs://BUCKET[/PREFIX] MOUNTPOINT -- COMMAND [ARGS...]\n"
	      "       gcsmount status MOUNTPOINT\n"
	      "       gcsmount --version | --help\n"
	      "\n"
	      "Mounts a Google Cloud Storage bucket prefix as a directory.\n"
	      "\n"
	      "  -f                   stay in the foreground (containers)\n"
	      "  -o endpoint=URL      API endpoint (else $STORAGE_EMULATOR_HOST, else\n"
	      "                       https://storage.googleapis.com)\n"
	      "  -o anonymous         no credentials (public buckets, emulators)\n"
	      "  -o key_file=PATH     service-account JSON key\n"
	      "  -o token_file=PATH   a raw access token kept fresh by something else\n"
	      "  -o uid=N,gid=N       owner shown for every file (default: yours)\n"
	      "  -o file_mode=0644,dir_mode=0755\n"
	      "  -o chunk_size=16M    resumable upload chunk (multiple of 256K)\n"
	      "  -o spool_dir=PATH    staged data (default /var/cache/gcsmount for root,\n"
	      "                       else $XDG_CACHE_HOME/gcsmount)\n"
	      "  -o read_ahead=64M    largest sequential prefetch window\n"
	      "  -o stat_ttl=60,type_ttl=60,negative_ttl=5   cache lifetimes, seconds\n"
	      "  -o retry_deadline=120  seconds to keep retrying a failing request\n"
	      "  -o metrics=ADDR:PORT serve Prometheus metrics on http://ADDR:PORT/metrics\n"
	      "  -o debug             verbose log (never secrets)\n"
	      "  -o noprogress        no progress line of long uploads on a terminal\n"
	      "                       (-o progress: even when stderr is not one)\n"
	      "  -o allow_other,...   libfuse's own mount options\n"
	      "\n"
	      "Credentials, first found wins: key_file/token_file, $GC_KEY_PATH,\n"
	      "$GOOGLE_KEY_PATH, $GOOGLE_APPLICATION_CREDENTIALS, $GC_KEYFILE_DICT,\n"
	      "$GOOGLE_KEYFILE_DICT, /plx-context/.gc/gc-secret.json, gcloud's\n"
	      "application-default credentials, the metadata server.\n", f);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "run") == 0)
		return run_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "status") == 0)
		return status_main(argc - 1, argv + 1);
	struct mount_opts o;
	char err[512];
	opts_defaults(&o);
	if (opts_parse(argc, argv, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "gcsmount: %s\n", err);
		opts_free(&o);
		return 2;
	}
	if (o.show_help) {
		usage(stdout);
		opts_free(&o);
		return 0;
	}
	if (o.show_version) {
		printf("gcsmount %s\n", GCSMOUNT_VERSION);
		opts_free(&o);
		return 0;
	}
	if (o.debug)
		log_set_level(LOG_LVL_DEBUG);
	struct mount_ctx *m = mount_prepare(&o, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "gcsmount: %s\n", err);
		opts_free(&o);
		return 1;
	}
	int status = mount_run(m);
	status = mount_end(m, status);
	opts_free(&o);
	return status;
}
