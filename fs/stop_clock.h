/*
 * stop_clock: shutdown_timeout counts from the moment the mount is told to
 * stop (a stop signal, or in run mode the command's exit), not from when
 * the request loop has ended.
 *
 * libfuse's signal handlers end the loop, but the loop returns only once
 * the requests under way are answered, a close uploading a large file
 * among them. Started, the clock sets every transfer to be abandoned
 * shutdown_timeout later (http_abandon_at), so such a close is bounded by
 * the same deadline as the uploads after it; what it had not sent stays in
 * the spool.
 */
#ifndef GCSMOUNT_STOP_CLOCK_H
#define GCSMOUNT_STOP_CLOCK_H

/* Set the clock's length (seconds); before anything can start it. */
void stop_clock_init(double shutdown_timeout);
/* Start it now, unless it has started. Async-signal-safe. */
void stop_clock_start(void);
/* Seconds left before its deadline (0 once past); the whole length when
 * it has not started. */
double stop_clock_left(void);

/* After fuse_set_signal_handlers(): SIGHUP, SIGINT and SIGTERM, where
 * libfuse handles them, start the clock and then do what libfuse does. */
void stop_clock_wrap_signals(void);
/* Before fuse_remove_signal_handlers(): put its handlers back. */
void stop_clock_unwrap_signals(void);

#endif
