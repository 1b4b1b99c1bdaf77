/* Unit tests of common/log: the status line below the log, on a terminal
 * (a pseudo-terminal here), with TERM=dumb, and through a pipe. stderr is
 * pointed at the test's terminal or pipe for each test and read back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "common/log.h"

static int saved_stderr = -1;

/* Everything readable on fd now (the writes are done when the calls return). */
static char *drain(int fd)
{
	static char out[8192];
	size_t got = 0;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	while (got + 1 < sizeof(out) && poll(&pfd, 1, 100) > 0) {
		ssize_t n = read(fd, out + got, sizeof(out) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	out[got] = '\0';
	return out;
}

/* A pseudo-terminal 40 columns wide as stderr, in raw mode (no \n -> \r\n);
 * returns the master side. */
static int stderr_to_pty(void)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	assert_true(master >= 0);
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	assert_true(slave >= 0);
	struct termios t;
	assert_int_equal(tcgetattr(slave, &t), 0);
	cfmakeraw(&t);
	assert_int_equal(tcsetattr(slave, TCSANOW, &t), 0);
	struct winsize ws = {.ws_row = 24, .ws_col = 40};
	assert_int_equal(ioctl(slave, TIOCSWINSZ, &ws), 0);
	if (saved_stderr < 0)
		saved_stderr = dup(STDERR_FILENO);
	assert_true(dup2(slave, STDERR_FILENO) >= 0);
	close(slave);
	return master;
}

static int stderr_to_pipe(void)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	if (saved_stderr < 0)
		saved_stderr = dup(STDERR_FILENO);
	assert_true(dup2(p[1], STDERR_FILENO) >= 0);
	close(p[1]);
	return p[0];
}

static void restore_stderr(int fd)
{
	dup2(saved_stderr, STDERR_FILENO);
	close(fd);
}

static void test_terminal(void **state)
{
	(void)state;
	setenv("TERM", "xterm", 1);
	int m = stderr_to_pty();
	assert_int_equal(log_status_open(0), 1);
	log_status_set("uploading 1 file, 1.0 MiB of 4.0 MiB");
	/* Drawn in place, the rest of the line cleared, the cursor parked at its start. */
	assert_string_equal(drain(m), "\ruploading 1 file, 1.0 MiB of 4.0 MiB\033[K\r");
	log_status_set("uploading 2 files, 3.0 MiB of 9.0 MiB, 210.0 MiB/s");
	/* Cut to the terminal's width less one, so it never wraps. */
	assert_string_equal(drain(m), "\ruploading 2 files, 3.0 MiB of 9.0 MiB, \033[K\r");
	log_info("a log line");
	/* The status line is cleared, the log line written, the status line drawn again. */
	char *out = drain(m);
	assert_true(strncmp(out, "\r\033[K", 4) == 0);
	assert_non_null(strstr(out, " gcsmount info: a log line\n\ruploading 2 files"));
	assert_true(strcmp(out + strlen(out) - 4, "\033[K\r") == 0);
	log_status_set("bell\a and escape\033[2J");
	assert_string_equal(drain(m), "\rbell? and escape?[2J\033[K\r");
	log_status_set(NULL);
	assert_string_equal(drain(m), "\r\033[K");
	log_status_set(NULL);
	assert_string_equal(drain(m), "");
	log_status_set("saving outputs: 1 file");
	drain(m);
	log_status_close("summary");
	assert_string_equal(drain(m), "\r\033[Ksummary\n");
	/* Closed for good: nothing more is drawn, log lines go out alone. */
	log_status_set("again");
	assert_string_equal(drain(m), "");
	log_info("after");
	out = drain(m);
	assert_true(out[0] != '\r');
	assert_non_null(strstr(out, " gcsmount info: after\n"));
	restore_stderr(m);
}

static void test_dumb_terminal(void **state)
{
	(void)state;
	setenv("TERM", "dumb", 1);
	int m = stderr_to_pty();
	assert_int_equal(log_status_open(0), 1);
	log_status_set("twelve chars");
	assert_string_equal(drain(m), "\rtwelve chars\r");
	log_status_set("six ch");
	/* No ESC[K: spaces clear what the longer line left. */
	assert_string_equal(drain(m), "\rsix ch      \r");
	log_status_set(NULL);
	assert_string_equal(drain(m), "\r      \r");
	log_status_close(NULL);
	assert_string_equal(drain(m), "");
	restore_stderr(m);
}

static void test_pipe(void **state)
{
	(void)state;
	setenv("TERM", "xterm", 1);
	int r = stderr_to_pipe();
	/* Not a terminal: no status line unless forced. */
	assert_int_equal(log_status_open(0), 0);
	log_status_set("uploading 1 file");
	log_status_close("summary");
	log_info("plain");
	char *out = drain(r);
	assert_null(strchr(out, '\r'));
	assert_null(strstr(out, "uploading"));
	assert_null(strstr(out, "summary"));
	assert_non_null(strstr(out, " gcsmount info: plain\n"));
	/* Forced (-o progress): drawn without escape sequences. */
	assert_int_equal(log_status_open(1), 1);
	log_status_set("uploading 1 file");
	assert_string_equal(drain(r), "\ruploading 1 file\r");
	log_status_close(NULL);
	assert_string_equal(drain(r), "\r                \r");
	restore_stderr(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_terminal),
		cmocka_unit_test(test_dumb_terminal),
		cmocka_unit_test(test_pipe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
