/*
 * bdi: set the kernel's read-ahead of our mount. See bdi.h.
 */
#include "fs/bdi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* "major:minor" of the newest FUSE mount on path, from /proc/self/mountinfo:
 * "id parent major:minor root mountpoint options... - fstype source ...". */
static int find_device(const char *path, char *dev, size_t devlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return -errno;
	char line[8192], mp[4096], d[64];
	int found = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		const char *dash = strstr(line, " - ");
		if (!dash || strncmp(dash + 3, "fuse", 4) != 0)
			continue;
		if (sscanf(line, "%*s %*s %63s %*s %4095s", d, mp) != 2)
			continue;
		unescape(mp);
		if (strcmp(mp, path) == 0 && strlen(d) < devlen) {
			snprintf(dev, devlen, "%s", d);
			found = 0; /* later lines are newer mounts: keep looking */
		}
	}
	fclose(f);
	return found;
}

int bdi_set_read_ahead(const char *mountpoint, unsigned kib)
{
	char dev[64], path[128], val[32];
	int rc = find_device(mountpoint, dev, sizeof(dev));
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int n = snprintf(val, sizeof(val), "%u\n", kib);
	rc = write(fd, val, (size_t)n) == n ? 0 : -errno;
	close(fd);
	return rc;
}
