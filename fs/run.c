/*
 * run: mount, run a command, forward signals, flush, unmount. See run.h.
 */
#include "fs/run.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "fs/mount.h"
#include "fs/options.h"
#include "fs/stop_clock.h"

extern char **environ;

int run_expand_env(const char *in, char **out, char *err, size_t errlen)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "");
	for (const char *p = in; *p;) {
		if (*p != '$') {
			buf_putc(&b, *p++);
			continue;
		}
		const char *name = p + 1;
		size_t len = 0;
		int braced = *name == '{';
		if (braced)
			name++;
		while ((name[len] >= 'A' && name[len] <= 'Z') || (name[len] >= 'a' && name[len] <= 'z') ||
		       (name[len] >= '0' && name[len] <= '9') || name[len] == '_')
			len++;
		if (len == 0 || (braced && name[len] != '}')) {
			buf_putc(&b, *p++); /* a lone '$' stays */
			continue;
		}
		char *var = xstrndup(name, len);
		const char *val = getenv(var);
		if (!val) {
			snprintf(err, errlen, "'%s' names $%s, which is not set", in, var);
			free(var);
			buf_free(&b);
			return -ENOENT;
		}
		free(var);
		buf_puts(&b, val);
		p = name + len + (braced ? 1 : 0);
	}
	*out = buf_detach(&b);
	return 0;
}

struct serve {
	struct mount_ctx *m;
	struct fuse_session *se;
	int status;
};

static void *serve_thread(void *arg)
{
	struct serve *s = arg;
	s->status = mount_serve(s->m, s->se);
	return NULL;
}

/* Take the mount away so the session loop ends, whatever still holds files open. */
static void detach_mount(const char *mountpoint)
{
	if (getuid() == 0) {
		if (umount2(mountpoint, MNT_DETACH) < 0 && errno != EINVAL)
			log_warn("unmount %s: %s", mountpoint, strerror(errno));
		return;
	}
	pid_t pid;
	char *argv[] = {"fusermount3", "-u", "-z", "-q", (char *)mountpoint, NULL};
	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) == 0)
		waitpid(pid, NULL, 0);
}

static int spawn_command(char **cmd, pid_t *pid)
{
	posix_spawnattr_t attr;
	sigset_t none, deflt;
	sigemptyset(&none);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGTERM);
	sigaddset(&deflt, SIGINT);
	sigaddset(&deflt, SIGHUP);
	sigaddset(&deflt, SIGQUIT);
	sigaddset(&deflt, SIGCHLD);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &deflt);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	int rc = posix_spawnp(pid, cmd[0], NULL, &attr, cmd, environ);
	posix_spawnattr_destroy(&attr);
	return -rc;
}

/* Forward signals to the command until it exits; returns its wait status. */
static int supervise(pid_t child, const sigset_t *set)
{
	for (;;) {
		int wstatus;
		/* As a container's PID 1 we also inherit orphans: reap them all. */
		pid_t r;
		while ((r = waitpid(-1, &wstatus, WNOHANG)) > 0)
			if (r == child)
				return wstatus;
		struct timespec tick = {0, 200 * 1000 * 1000};
		siginfo_t info;
		int sig = sigtimedwait(set, &info, &tick);
		if (sig > 0 && sig != SIGCHLD) {
			log_info("run: passing signal %d to the command", sig);
			kill(child, sig);
		}
	}
}

int run_main(int argc, char **argv)
{
	int dd = 0;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			dd = i;
			break;
		}
	if (!dd || dd + 1 >= argc) {
		fprintf(stderr, "gcsmount: usage: gcsmount run [-o OPTS] gs://BUCKET[/PREFIX] "
			"MOUNTPOINT -- COMMAND [ARGS...]\n");
		return 2;
	}
	/* Expand $VAR in BUCKET/PREFIX (the first argument that is not an option). */
	char err[512];
	char **margv = xcalloc((size_t)dd + 1, sizeof(*margv));
	char *expanded = NULL;
	margv[0] = argv[0];
	for (int i = 1; i < dd; i++) {
		margv[i] = argv[i];
		int is_opt_value = i > 1 && strcmp(argv[i - 1], "-o") == 0;
		if (!expanded && argv[i][0] != '-' && !is_opt_value) {
			if (run_expand_env(argv[i], &expanded, err, sizeof(err)) < 0) {
				fprintf(stderr, "gcsmount: %s\n", err);
				free(margv);
				return 2;
			}
			margv[i] = expanded;
		}
	}
	struct mount_opts o;
	opts_defaults(&o);
	int rc = opts_parse(dd, margv, &o, err, sizeof(err));
	free(margv);
	free(expanded);
	if (rc < 0) {
		fprintf(stderr, "gcsmount: %s\n", err);
		opts_free(&o);
		return 2;
	}
	o.foreground = 1;
	if (o.debug)
		log_set_level(LOG_LVL_DEBUG);
	if (mkdir(o.mountpoint, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "gcsmount: mountpoint %s: %s\n", o.mountpoint, strerror(errno));
		opts_free(&o);
		return 1;
	}
	struct mount_ctx *m = mount_prepare(&o, err, sizeof(err));
	if (!m) {
		fprintf(stderr, "gcsmount: %s\n", err);
		opts_free(&o);
		return 1;
	}
	/* Signals are taken by sigtimedwait here, never by the mount's threads. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	int status = 1;
	struct serve s = {.m = m};
	s.se = mount_session_open(m, 0);
	pthread_t th;
	if (!s.se || pthread_create(&th, NULL, serve_thread, &s) != 0)
		goto out;
	pid_t child;
	rc = spawn_command(argv + dd + 1, &child);
	int wstatus = 0;
	if (rc < 0) {
		fprintf(stderr, "gcsmount: cannot run %s: %s\n", argv[dd + 1], strerror(-rc));
		status = 127;
	} else {
		wstatus = supervise(child, &set);
		status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
		       : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : 1;
		log_info("run: the command exited with status %d; saving outputs", status);
	}
	stop_clock_start(); /* shutdown_timeout counts from here */
	mount_saving_outputs(m);
	detach_mount(o.mountpoint);
	/* Files the command's leftovers still hold are flushed through the mount;
	 * the shutdown deadline bounds that too. */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)o.shutdown_timeout + 2;
	if (pthread_timedjoin_np(th, NULL, &until) != 0) {
		log_error("run: uploads still running %gs after the command ended",
			  o.shutdown_timeout);
		/* The serving thread is still at it: its progress line must not
		 * be drawn over what follows. */
		log_status_close(NULL);
		mount_abandon(m);
		s.status = 3;
		s.se = NULL; /* in use by the serving thread */
	}
	if (s.status == 3) {
		fprintf(stderr, "gcsmount: outputs under %s were not all saved to gs://%s/%s; they stay "
			"in the spool and the next mount uploads them\n", o.mountpoint, o.bucket, o.prefix);
		status = RUN_EXIT_UNSAVED;
	} else if (s.status != 0 && status == 0) {
		status = 1;
	}
out:
	if (s.se)
		mount_session_close(s.se, 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	status = mount_end(m, status);
	opts_free(&o);
	return status;
}
