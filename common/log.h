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

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_get_level() >= LOG_LVL_DEBUG) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
