/*
 * progress: a status line on the terminal while uploads take long, and
 * while run mode's final flush saves the outputs.
 *
 * When the mount runs in the foreground and stderr is a terminal (or
 * -o progress forces it), a thread looks at the uploads under way
 * (uploader_totals) PROGRESS_HZ times a second. Once one of them has gone
 * on for PROGRESS_AFTER_S seconds it shows, as the log's status line
 * (log.h: redrawn in place, cleared around log lines):
 *
 *     uploading 3 files, 1.2 GiB of 4.0 GiB, 210.0 MiB/s
 *
 * and removes it when they have ended. The bytes are those of the uploads
 * under way, counted from where each started, confirmed by the server a
 * chunk at a time; the rate is of request bytes sent, over the last
 * seconds. After progress_saving() (run mode: the command exited) the line
 * reads "saving outputs: N files, X of Y, R/s", counting what was uploaded
 * since, and shows without the wait; the end leaves one summary line.
 *
 * Only counts, sizes and the destination given at creation are shown,
 * never file names or anything of the credentials. When nothing is to be
 * drawn, progress_new() returns NULL, no thread runs, and every call below
 * accepts NULL. Cost: one walk of the uploads under way (a handful of
 * writers, atomics only) per tick.
 */
#ifndef GCSMOUNT_PROGRESS_H
#define GCSMOUNT_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "fs/uploader.h"

#define PROGRESS_HZ 4
#define PROGRESS_AFTER_S 2.0
/* The final flush shows once it has taken this long (no flash when quick). */
#define PROGRESS_SAVING_AFTER_S 0.5

struct progress;

/* mode: the progress option (-1 when stderr is a terminal, 0 off, 1 on).
 * foreground: a daemon has no terminal. dest: "gs://BUCKET/PREFIX", for
 * the summary. NULL when nothing will be drawn. */
struct progress *progress_new(int mode, int foreground, const char *dest);
/* Start the thread, once up is started. 0 or -errno. */
int progress_start(struct progress *p, struct uploader *up);
/* Run mode: the command exited; what follows is the final flush. */
void progress_saving(struct progress *p);
/* Stop the thread and remove the line for good; after progress_saving()
 * and when saved (everything is in the bucket), leave the summary line.
 * Later calls do nothing. */
void progress_end(struct progress *p, int saved);
/* progress_end(p, 0) unless ended, then free. */
void progress_free(struct progress *p);

/* The pieces of the line, for tests. "1.2 GiB", "512 B". */
void progress_size(uint64_t bytes, char *out, size_t len);
/* The line for totals t. saving: run mode's final flush, counting from the
 * baselines files0, bytes0 (t's files_done, bytes_done when it began).
 * rate: bytes per second, negative when not known yet. */
void progress_text(const struct upload_totals *t, int saving, uint64_t files0, uint64_t bytes0,
		   double rate, char *out, size_t len);
/* The summary after a final flush that uploaded files and bytes in seconds. */
void progress_summary(const char *dest, uint64_t files, uint64_t bytes, double seconds,
		      char *out, size_t len);

#endif
