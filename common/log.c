/*
 * log: leveled one-line logging to stderr or syslog, and the status line
 * kept below it on a terminal. See log.h.
 *
 * The status line is drawn as "\r" TEXT ESC[K "\r": the cursor is parked at
 * the start of the line, so that output of other processes sharing the
 * terminal (a command run by `gcsmount run`) overwrites the status line
 * instead of being appended to it. On a terminal without ESC[K (TERM=dumb)
 * the rest of the line is cleared with spaces.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define STATUS_MAX 256

static enum log_level current = LOG_LVL_INFO;
static int to_syslog;

/* out_lock orders writes to stderr and guards the status fields. */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int status_on;             /* log_status_open() said yes, and not closed */
static int status_dumb;           /* the terminal knows no ESC[K */
static char status[STATUS_MAX];   /* the line shown; "" when none */
static size_t status_width;       /* its length on the screen */

void log_set_level(enum log_level level) { current = level; }
enum log_level log_get_level(void) { return current; }

void log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	to_syslog = 1;
}

/* Clear the status line from the screen (out_lock held). */
static void status_erase(void)
{
	if (!status[0])
		return;
	if (status_dumb)
		fprintf(stderr, "\r%*s\r", (int)status_width, "");
	else
		fputs("\r\033[K", stderr);
}

/* Draw the status line (out_lock held); cursor left at column 0. */
static void status_draw(size_t old_width)
{
	if (!status[0])
		return;
	if (status_dumb) {
		int pad = old_width > status_width ? (int)(old_width - status_width) : 0;
		fprintf(stderr, "\r%s%*s\r", status, pad, "");
	} else {
		fprintf(stderr, "\r%s\033[K\r", status);
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	if (level > current)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One event, one line: fold any newline a server message carried. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (to_syslog) {
		syslog(prio[level], "%s", line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	pthread_mutex_lock(&out_lock);
	status_erase();
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ gcsmount %s: %s\n",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		tm.tm_sec, ts.tv_nsec / 1000000, names[level], line);
	status_draw(0);
	pthread_mutex_unlock(&out_lock);
}

int log_status_open(int force)
{
	pthread_mutex_lock(&out_lock);
	int tty = isatty(STDERR_FILENO);
	status_on = !to_syslog && (force || tty);
	const char *term = getenv("TERM");
	status_dumb = !tty || !term || !*term || strcmp(term, "dumb") == 0;
	int on = status_on;
	pthread_mutex_unlock(&out_lock);
	return on;
}

/* Columns the status line may take: one less than the terminal's width. */
static size_t status_columns(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1)
		return (size_t)ws.ws_col - 1 < STATUS_MAX - 1 ? (size_t)ws.ws_col - 1 : STATUS_MAX - 1;
	return 79;
}

void log_status_set(const char *text)
{
	pthread_mutex_lock(&out_lock);
	if (!status_on) {
		pthread_mutex_unlock(&out_lock);
		return;
	}
	if (!text || !*text) {
		status_erase();
		status[0] = '\0';
		status_width = 0;
	} else {
		size_t old = status[0] ? status_width : 0;
		size_t cols = status_columns();
		size_t len = strlen(text);
		if (len > cols)
			len = cols;
		memcpy(status, text, len);
		status[len] = '\0';
		/* Only printable ASCII: anything else could move the cursor. */
		for (char *p = status; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				*p = '?';
		status_width = len;
		status_draw(old);
	}
	pthread_mutex_unlock(&out_lock);
}

void log_status_close(const char *last)
{
	pthread_mutex_lock(&out_lock);
	if (status_on) {
		status_erase();
		status[0] = '\0';
		status_width = 0;
		if (last)
			fprintf(stderr, "%s\n", last);
		status_on = 0;
	}
	pthread_mutex_unlock(&out_lock);
}
