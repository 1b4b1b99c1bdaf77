/*
 * status: `gcsmount status MOUNTPOINT`. See status.h; the text it reads is
 * described in observe.h.
 */
#include "fs/status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "fs/observe.h"

#define VALUE_MAX 65536

static void usage(FILE *f)
{
	fputs("usage: gcsmount status MOUNTPOINT\n"
	      "\n"
	      "Lists the files a running gcsmount mount has not yet put in the bucket\n"
	      "entirely. Exit status: 0 when everything written is in the bucket, 1 when\n"
	      "something is pending, 2 when MOUNTPOINT is not the root of a gcsmount mount.\n", f);
}

static void format_age(double s, char *out, size_t len)
{
	if (s < 60)
		snprintf(out, len, "%.1fs", s);
	else if (s < 3600)
		snprintf(out, len, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(out, len, "%dh%02dm", (int)(s / 3600), (int)s % 3600 / 60);
}

/* The next line of text (without its newline), or NULL at the end. */
static const char *next_line(const char **p, const char *end, size_t *len)
{
	if (*p >= end)
		return NULL;
	const char *line = *p;
	const char *nl = memchr(line, '\n', (size_t)(end - line));
	*len = (size_t)((nl ? nl : end) - line);
	*p = nl ? nl + 1 : end;
	return line;
}

int status_print(const char *text, size_t len, FILE *out)
{
	const char *p = text, *end = text + len, *line;
	size_t ll;
	line = next_line(&p, end, &ll);
	if (!line || ll < 16 || strncmp(line, "gcsmount-status ", 16) != 0)
		return 2;
	char source[1024] = "the bucket";
	unsigned long long pending = 0;
	size_t shown = 0;
	struct buf rows = BUF_INIT;
	while ((line = next_line(&p, end, &ll))) {
		char *l = xstrndup(line, ll);
		unsigned long long size, unpub;
		double age;
		char state[16];
		int off = 0;
		if (strncmp(l, "source ", 7) == 0) {
			snprintf(source, sizeof(source), "%s", l + 7);
		} else if (sscanf(l, "pending %llu", &pending) == 1) {
			/* counted */
		} else if (sscanf(l, "file %llu %llu %lf %15s%n", &size, &unpub, &age, state,
				  &off) == 4 && l[off] == ' ') {
			off++; /* one space, then the path as it is */
			char a[32];
			format_age(age, a, sizeof(a));
			buf_printf(&rows, "%12llu %12llu %8s  %-10s %s\n", size, unpub, a, state,
				   l + off);
			shown++;
		} else if (strncmp(l, "error ", 6) == 0) {
			buf_printf(&rows, "%36s last error: %s\n", "", l + 6);
		}
		free(l);
	}
	if (pending == 0) {
		fprintf(out, "%s: everything written is in the bucket\n", source);
		buf_free(&rows);
		return 0;
	}
	fprintf(out, "%s: %llu file%s not yet entirely in the bucket\n", source, pending,
		pending == 1 ? "" : "s");
	fprintf(out, "%12s %12s %8s  %-10s %s\n", "SIZE", "NOT IN GCS", "AGE", "STATE", "FILE");
	if (rows.len)
		fputs(rows.data, out);
	if (shown < pending)
		fprintf(out, "... and %llu more\n", pending - shown);
	buf_free(&rows);
	return 1;
}

/* The mount answers with its status in a file at its root that is never listed. */
static ssize_t read_status_file(const char *mp, char *buf, size_t cap)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", mp, STATUS_FILE);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(fd);
			errno = err;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	return (ssize_t)got;
}

int status_main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		usage(stderr);
		return 2;
	}
	const char *mp = argv[1];
	struct stat st;
	if (stat(mp, &st) < 0) {
		fprintf(stderr, "gcsmount status: %s: %s\n", mp, strerror(errno));
		return 2;
	}
	char *value = xmalloc(VALUE_MAX);
	ssize_t n = read_status_file(mp, value, VALUE_MAX);
	int status = 2;
	if (n < 0) {
		int err = errno;
		if (err == ENOENT || err == ENOTDIR)
			fprintf(stderr, "gcsmount status: %s: not the root of a gcsmount mount\n", mp);
		else if (err == ENOTCONN)
			fprintf(stderr, "gcsmount status: %s: the mount's gcsmount process is gone "
				"(what it had not uploaded stays in its spool for the next mount)\n", mp);
		else
			fprintf(stderr, "gcsmount status: %s: %s\n", mp, strerror(err));
	} else {
		status = status_print(value, (size_t)n, stdout);
		if (status == 2)
			fprintf(stderr, "gcsmount status: %s: not the root of a gcsmount mount\n", mp);
	}
	free(value);
	return status;
}
