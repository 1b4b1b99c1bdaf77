/*
 * log: one line per event, with a level, to stderr or syslog.
 *
 * Never pass a secret (token, key, assertion) to these functions: nothing in
 * the logging path knows what a secret is, so the callers must not hand one in.
 */
#ifndef GCSMOUNT_LOG_H
#define GCSMOUNT_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Route lines to syslog (daemon mode) instead of stderr. */
void log_use_syslog(const char *ident);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * The status line: on a terminal, one line below the log redrawn in place
 * (the progress of long uploads). log.c owns stderr: a log line clears the
 * status line, is written, and the status line is drawn again under it, so
 * the two never mix. One mutex orders every write to stderr made here.
 *
 * log_status_open() decides once whether a status line is drawn: lines go
 * to stderr (not syslog) and stderr is a terminal, or force is set. It
 * returns 1 when it will be; otherwise the other calls do nothing.
 * log_status_set() shows text (cut to the terminal's width; NULL or ""
 * removes the line). log_status_close() removes it for good and, when last
 * is not NULL, writes last as a line of its own (a summary).
 */
int log_status_open(int force);
void log_status_set(const char *text);
void log_status_close(const char *last);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_get_level() >= LOG_LVL_DEBUG) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
