/*
 * mount: preparing, serving and tearing down one mount. See mount.h.
 */
#include "fs/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "common/http.h"
#include "common/log.h"
#include "common/metrics.h"
#include "fs/bdi.h"
#include "fs/fs.h"
#include "fs/observe.h"
#include "fs/progress.h"
#include "fs/reader.h"
#include "fs/stop_clock.h"
#include "fs/writer.h"

#define DEFAULT_ENDPOINT "https://storage.googleapis.com"
/* The pre-mount check gives up quickly: a wrong endpoint should fail now. */
#define CHECK_DEADLINE 5.0
/* Files streaming at once; each has one chunk in flight. */
#define UPLOAD_THREADS 8
/* Ranges fetched ahead at once, all readers together, and their memory. */
#define PREFETCH_THREADS 8
/* The kernel's read-ahead on the mount, as big as one FUSE read request can
 * be (max_readahead in fs_op_init): larger windows send requests out of
 * order beyond what the reader's sequential detection accepts. */
#define KERNEL_READ_AHEAD_KIB 1024
#define READ_BUDGET(read_ahead) ((read_ahead) * 4 > (256u << 20) ? (read_ahead) * 4 : (256u << 20))

struct mount_ctx {
	const struct mount_opts *opts;
	int abandoned;              /* uploads still running at exit: leave them be */
	struct auth *auth;
	struct fs fs;
	char *endpoint;
	struct progress *progress;  /* the status line, or NULL */
};

static char *pick_endpoint(const struct mount_opts *o)
{
	if (o->endpoint)
		return xstrdup(o->endpoint);
	const char *env = getenv("STORAGE_EMULATOR_HOST");
	if (env && *env) {
		/* Google's libraries accept "host:port" here as well as a URL. */
		if (strncmp(env, "http://", 7) && strncmp(env, "https://", 8)) {
			struct buf b = BUF_INIT;
			buf_printf(&b, "http://%s", env);
			return buf_detach(&b);
		}
		return xstrdup(env);
	}
	return xstrdup(DEFAULT_ENDPOINT);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path);
	int rc = 0;
	for (char *s = p + 1; rc == 0; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			rc = -errno;
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return rc;
}

static char *spool_path(const struct mount_opts *o)
{
	struct buf b = BUF_INIT;
	if (o->spool_dir) {
		buf_puts(&b, o->spool_dir);
	} else if (getuid() != 0 && getenv("XDG_CACHE_HOME")) {
		buf_printf(&b, "%s/gcsmount", getenv("XDG_CACHE_HOME"));
	} else if (getuid() != 0 && getenv("HOME")) {
		buf_printf(&b, "%s/.cache/gcsmount", getenv("HOME"));
	} else {
		buf_puts(&b, "/var/cache/gcsmount");
	}
	return buf_detach(&b);
}

static int prepare_spool(struct mount_ctx *m, char *err, size_t errlen)
{
	char *path = spool_path(m->opts);
	int rc = mkdir_p(path, 0700);
	if (rc == 0 && chmod(path, 0700) < 0)
		rc = -errno;
	if (rc == 0) {
		/* One directory per mount target: a restart finds its own entries. */
		struct buf key = BUF_INIT;
		buf_printf(&key, "%s\n%s\n%s", m->endpoint, m->opts->bucket, m->fs.prefix);
		rc = spool_open(&m->fs.spool, path, key.data);
		buf_free(&key);
	}
	if (rc < 0) {
		snprintf(err, errlen, "spool directory %s: %s", path, strerror(-rc));
		free(path);
		return rc;
	}
	free(path);
	return 0;
}

struct mount_ctx *mount_prepare(const struct mount_opts *o, char *err, size_t errlen)
{
	struct stat st;
	if (stat(o->mountpoint, &st) < 0) {
		snprintf(err, errlen, "mountpoint %s: %s", o->mountpoint, strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "mountpoint %s: not a directory", o->mountpoint);
		return NULL;
	}
	if (http_global_init() < 0) {
		snprintf(err, errlen, "cannot initialise libcurl");
		return NULL;
	}
	stop_clock_init(o->shutdown_timeout);
	struct mount_ctx *m = xcalloc(1, sizeof(*m));
	m->opts = o;
	m->endpoint = pick_endpoint(o);
	/* Listen now: a bad address or a port in use fails the mount. */
	if (o->metrics && metrics_serve_bind(o->metrics, err, errlen) < 0)
		goto fail;
	char aerr[384] = "";
	struct auth_config ac = {
		.key_file = o->key_file, .token_file = o->token_file, .anonymous = o->anonymous,
	};
	m->auth = auth_new(&ac, aerr, sizeof(aerr));
	if (!m->auth) {
		snprintf(err, errlen, "credentials: %s", aerr);
		goto fail;
	}
	struct gcs_config gc = {
		.endpoint = m->endpoint, .bucket = o->bucket, .auth = m->auth,
		.retry_deadline = o->retry_deadline,
	};
	m->fs.gcs = gcs_client_new(&gc);
	m->fs.opts = o;
	gcs_client_set_retry_deadline(m->fs.gcs, CHECK_DEADLINE < o->retry_deadline
						    ? CHECK_DEADLINE : o->retry_deadline);
	struct gcs_error e = {0};
	if (gcs_bucket_check(m->fs.gcs, &e) < 0) {
		snprintf(err, errlen, "%s", e.msg);
		goto fail;
	}
	struct buf prefix = BUF_INIT;
	if (o->prefix[0])
		buf_printf(&prefix, "%s/", o->prefix);
	else
		buf_puts(&prefix, "");
	m->fs.prefix = buf_detach(&prefix);
	if (m->fs.prefix[0] && gcs_name_check(m->fs.prefix, strlen(m->fs.prefix)) < 0) {
		snprintf(err, errlen, "prefix '%s': not a name GCS can hold", o->prefix);
		goto fail;
	}
	struct gcs_list_page page;
	if (gcs_list(m->fs.gcs, m->fs.prefix, "/", NULL, 1, &page, &e) < 0) {
		snprintf(err, errlen, "%s", e.msg);
		goto fail;
	}
	gcs_list_page_free(&page);
	gcs_client_set_retry_deadline(m->fs.gcs, o->retry_deadline);
	if (prepare_spool(m, err, errlen) < 0)
		goto fail;
	struct buf tmp = BUF_INIT;
	buf_printf(&tmp, "%s%s", m->fs.prefix, FS_TMP_DIR "/");
	m->fs.tmp_prefix = buf_detach(&tmp);
	m->fs.wenv = (struct writer_env){
		.gcs = m->fs.gcs,
		.spool = &m->fs.spool,
		.uploader = &m->fs.uploader,
		.chunk_size = o->chunk_size,
		.tmp_prefix = m->fs.tmp_prefix,
	};
	inode_table_init(&m->fs.inodes);
	clock_gettime(CLOCK_REALTIME, &m->fs.started);
	fs_observe_register(&m->fs);
	struct buf dest = BUF_INIT;
	buf_printf(&dest, "gs://%s%s%s", o->bucket, o->prefix[0] ? "/" : "", o->prefix);
	m->progress = progress_new(o->progress, o->foreground, dest.data);
	buf_free(&dest);
	return m;
fail:
	mount_free(m);
	return NULL;
}

/* At exit: publish what files still open hold, so nothing written is lost. */
static int flush_all(struct mount_ctx *m)
{
	struct inode_table *t = &m->fs.inodes;
	int failed = 0;
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct inode *i = t->by_ino[b]; i; i = i->next_ino) {
			if (!i->writer)
				continue;
			struct gcs_error e = {0};
			struct gcs_object obj = {0};
			if (writer_publish(i->writer, &obj, &e) < 0) {
				log_error("at exit: %s; what was written stays in the spool for the "
					  "next mount", e.msg);
				failed = 1;
			}
			gcs_object_clear(&obj);
		}
	return failed;
}

/* The last uploads, run beside a clock: shutdown_timeout bounds them. */
struct leftover;

struct shutdown {
	struct mount_ctx *m;
	struct leftover *leftovers; /* for the recovery thread */
	pthread_t recovery;
	int recovering;
	int recovered;              /* atomic: the recovery thread is done */
	pthread_mutex_t lock;
	pthread_cond_t cv;
	int done;
	int failed;
};

struct leftover_count {
	struct mount_ctx *m;
	int n;
};

/* Whether a spool entry belongs to a file still open here (flush_all had its turn). */
static int entry_is_live(struct mount_ctx *m, const char *id)
{
	struct inode_table *t = &m->fs.inodes;
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct inode *i = t->by_ino[b]; i; i = i->next_ino)
			if (i->writer && strcmp(i->writer->id, id) == 0)
				return 1;
	return 0;
}

static void name_leftover(void *arg, const char *id, struct spool_state *st, int fd)
{
	struct leftover_count *c = arg;
	if (st->conflict) {
		c->n++; /* named when its writer went */
	} else if (!entry_is_live(c->m, id)) {
		log_error("%s: not in the bucket; its data stays in the spool for the next mount",
			  st->object);
		c->n++;
	}
	close(fd);
	spool_state_clear(st);
}

static void *shutdown_thread(void *arg)
{
	struct shutdown *sd = arg;
	if (sd->recovering)
		pthread_join(sd->recovery, NULL);
	int failed = flush_all(sd->m);
	/* What an earlier run left that this one could not upload yet: once more. */
	publisher_retry_entries_now(&sd->m->fs.publisher);
	/* Files whose upload failed earlier (close reported it) are still there. */
	struct leftover_count c = {sd->m, 0};
	spool_scan(&sd->m->fs.spool, name_leftover, &c);
	if (c.n)
		failed = 1;
	pthread_mutex_lock(&sd->lock);
	sd->done = 1;
	sd->failed = failed;
	pthread_cond_signal(&sd->cv);
	pthread_mutex_unlock(&sd->lock);
	return NULL;
}

/*
 * Returns 0 when everything is uploaded, 3 when something stays in the spool
 * (named in the log; the next mount finishes it). Sets m->abandoned when
 * uploads were still running at the deadline: the process must then exit
 * without tearing down what they use.
 */
static int shutdown_uploads(struct mount_ctx *m, struct shutdown *sd)
{
	double limit = m->opts->shutdown_timeout;
	/* Counted from the stop: a signal, or the command's exit in run mode (a
	 * close may have been uploading since), else the unmount (mount_serve). */
	double left = stop_clock_left();
	log_info("unmounted; finishing uploads (at most %.3gs)", left);
	gcs_client_set_retry_deadline(m->fs.gcs, left);
	pthread_t th;
	if (pthread_create(&th, NULL, shutdown_thread, sd) != 0) {
		shutdown_thread(sd);
		return sd->failed ? 3 : 0;
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)left;
	until.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&sd->lock);
	while (!sd->done)
		if (pthread_cond_timedwait(&sd->cv, &sd->lock, &until) == ETIMEDOUT)
			break;
	int done = sd->done, failed = sd->failed;
	pthread_mutex_unlock(&sd->lock);
	if (done) {
		pthread_join(th, NULL);
		return failed ? 3 : 0;
	}
	struct inode_table *t = &m->fs.inodes;
	int pending = sd->recovering && !__atomic_load_n(&sd->recovered, __ATOMIC_ACQUIRE);
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct inode *i = t->by_ino[b]; i; i = i->next_ino)
			if (i->writer && __atomic_load_n(&i->writer->dirty, __ATOMIC_RELAXED)) {
				log_error("%s: not uploaded within shutdown_timeout=%gs; it stays in the "
					  "spool and the next mount finishes it", i->writer->object, limit);
				pending = 1;
			}
	if (!pending) {
		/* Nothing was uploading (shutdown_timeout=0, say): what is left
		 * is the scan of the spool, which takes no time worth a failure. */
		pthread_join(th, NULL);
		return sd->failed ? 3 : 0;
	}
	log_error("shutdown deadline reached with uploads still running");
	m->abandoned = 1;
	return 3;
}

/* What an earlier run left in the spool, found before this one writes there. */
struct leftover {
	char id[96];
	struct spool_state st;
	int fd;
	struct leftover *next;
};

static void collect_leftover(void *arg, const char *id, struct spool_state *st, int fd)
{
	struct leftover **list = arg;
	struct leftover *l = xcalloc(1, sizeof(*l));
	snprintf(l->id, sizeof(l->id), "%s", id);
	l->st = *st;
	memset(st, 0, sizeof(*st));
	l->fd = fd;
	l->next = *list;
	*list = l;
}

static void recover_one(struct mount_ctx *m, struct leftover *l)
{
	if (l->st.conflict) {
		writer_note_conflict(m->fs.spool.dir, l->id, &l->st);
		close(l->fd);
	} else if (!l->st.closing && m->opts->publish_interval <= 0) {
		/* Never closed or fsynced, and not published while open: the
		 * program had not finished it, so it must not look finished. */
		log_warn("%s: %s/%s.data holds what was written before the mount stopped, but the "
			 "file was never closed; not publishing it", l->st.object, m->fs.spool.dir,
			 l->id);
		close(l->fd);
	} else {
		int rc = writer_recover(&m->fs.wenv, l->id, &l->st, l->fd);
		if (rc < 0 && rc != -ESTALE)
			publisher_retry_entry(&m->fs.publisher, l->id);
	}
	spool_state_clear(&l->st);
}

static void *recover_thread(void *arg)
{
	struct shutdown *sd = arg;
	for (struct leftover *l = sd->leftovers, *next; l; l = next) {
		next = l->next;
		recover_one(sd->m, l);
		free(l);
	}
	sd->leftovers = NULL;
	__atomic_store_n(&sd->recovered, 1, __ATOMIC_RELEASE);
	return NULL;
}

struct fuse_session *mount_session_open(struct mount_ctx *m, int signals)
{
	const struct mount_opts *o = m->opts;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct buf fo = BUF_INIT;
	buf_printf(&fo, "fsname=gs://%s%s%s,subtype=gcsmount", o->bucket, o->prefix[0] ? "/" : "",
		   o->prefix);
	if (o->fuse_opts.len)
		buf_printf(&fo, ",%s", o->fuse_opts.data);
	int bad = fuse_opt_add_arg(&args, "gcsmount") || fuse_opt_add_arg(&args, "-o") ||
		  fuse_opt_add_arg(&args, fo.data);
	buf_free(&fo);
	struct fuse_session *se = bad ? NULL
				      : fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &m->fs);
	fuse_opt_free_args(&args);
	if (!se) {
		fprintf(stderr, "gcsmount: libfuse refused the options\n");
		return NULL;
	}
	m->fs.se = se;
	if (signals && fuse_set_signal_handlers(se) != 0) {
		fuse_session_destroy(se);
		return NULL;
	}
	if (signals)
		stop_clock_wrap_signals();
	/* Resolved now: after the mount, resolving it would ask the mount itself. */
	char *real = realpath(o->mountpoint, NULL);
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		free(real);
		fprintf(stderr, "gcsmount: cannot mount on %s (is /dev/fuse there and are you allowed "
			"to use it?)\n", o->mountpoint);
		if (signals) {
			stop_clock_unwrap_signals();
			fuse_remove_signal_handlers(se);
		}
		fuse_session_destroy(se);
		return NULL;
	}
	log_info("mounted gs://%s/%s on %s", o->bucket, o->prefix, o->mountpoint);
	int rc = real ? bdi_set_read_ahead(real, KERNEL_READ_AHEAD_KIB) : -ENOENT;
	if (rc < 0)
		log_debug("kernel read-ahead of %s left as it was: %s", o->mountpoint, strerror(-rc));
	free(real);
	return se;
}

void mount_session_close(struct fuse_session *se, int signals)
{
	fuse_session_unmount(se);
	if (signals) {
		stop_clock_unwrap_signals();
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
}

int mount_serve(struct mount_ctx *m, struct fuse_session *se)
{
	const struct mount_opts *o = m->opts;
	if (uploader_start(&m->fs.uploader, UPLOAD_THREADS, o->write_buffer) < 0)
		return 1;
	publisher_start(&m->fs.publisher, &m->fs, o->publish_interval, o->retry_deadline);
	progress_start(m->progress, &m->fs.uploader);
	m->fs.prefetcher = prefetcher_new(PREFETCH_THREADS, READ_BUDGET(o->read_ahead));
	char merr[256];
	if (o->metrics && metrics_serve_start(o->metrics, merr, sizeof(merr)) < 0)
		log_error("%s", merr);
	struct shutdown sd = {.m = m, .lock = PTHREAD_MUTEX_INITIALIZER,
			      .cv = PTHREAD_COND_INITIALIZER};
	/* The spool's entries now are an earlier run's: recover those, never ours. */
	int n = spool_scan(&m->fs.spool, collect_leftover, &sd.leftovers);
	if (n < 0)
		log_error("spool %s: %s", m->fs.spool.dir, strerror(-n));
	sd.recovering = pthread_create(&sd.recovery, NULL, recover_thread, &sd) == 0;
	if (!sd.recovering)
		recover_thread(&sd);
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, 32);
	fuse_loop_cfg_set_idle_threads(lc, 16);
	int rc = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	/* libfuse returns the signal that ended the loop; that is a clean stop. */
	int status = rc >= 0 ? 0 : 1;
	if (rc > 0)
		log_info("signal %d: stopping", rc);
	/* Unmounted (or signalled): no new writes; upload what is pending. The
	 * clock runs from here at the latest, so that a background publish or
	 * retry under way, which the publisher's stop waits for, counts too. */
	stop_clock_start();
	fuse_session_unmount(se);
	publisher_stop(&m->fs.publisher);
	if (shutdown_uploads(m, &sd))
		status = 3;
	progress_end(m->progress, status == 0);
	if (!m->abandoned) {
		/* Handles of processes that still held files at unmount. */
		fs_open_drop_all(&m->fs);
		publisher_release_held(&m->fs);
		uploader_stop(&m->fs.uploader);
		prefetcher_free(m->fs.prefetcher);
	}
	return status;
}

int mount_run(struct mount_ctx *m)
{
	const struct mount_opts *o = m->opts;
	struct fuse_session *se = mount_session_open(m, 1);
	if (!se)
		return 1;
	int status = 1;
	if (!o->foreground) {
		if (!o->debug)
			log_use_syslog("gcsmount");
		/* Threads start after this: fork keeps only the calling thread. */
		if (fuse_daemonize(0) != 0)
			goto out;
	}
	status = mount_serve(m, se);
out:
	mount_session_close(se, 1);
	return status;
}

void mount_saving_outputs(struct mount_ctx *m)
{
	progress_saving(m->progress);
}

void mount_abandon(struct mount_ctx *m)
{
	m->abandoned = 1;
}

int mount_end(struct mount_ctx *m, int status)
{
	if (m && m->abandoned) {
		/* Upload threads still run: exit() would tear down what they use. */
		fflush(NULL);
		_exit(status);
	}
	mount_free(m);
	return status;
}

void mount_free(struct mount_ctx *m)
{
	/* No scrape may read the mount past this point. */
	metrics_serve_stop();
	metrics_clear_collectors();
	if (!m || m->abandoned)
		return; /* threads still use it; the process is exiting */
	progress_free(m->progress);
	if (m->fs.inodes.by_ino)
		inode_table_free(&m->fs.inodes);
	gcs_client_free(m->fs.gcs);
	auth_free(m->auth);
	free(m->fs.prefix);
	spool_close(&m->fs.spool);
	free(m->fs.tmp_prefix);
	free(m->endpoint);
	free(m);
	http_global_cleanup();
}
