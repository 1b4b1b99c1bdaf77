/*
 * publisher: the background thread that publishes files held open for
 * writing every publish_interval seconds (TensorFlow event files, training
 * logs: written for hours, only fflush()ed), so readers of the bucket see
 * them grow while the job runs. The work per file is in
 * writer_publish_due(); this only finds the files and keeps time.
 */
#ifndef GCSMOUNT_PUBLISHER_H
#define GCSMOUNT_PUBLISHER_H

#include <pthread.h>

struct fs;

struct publisher {
	struct fs *fs;
	double interval;
	pthread_t thread;
	pthread_mutex_t lock;       /* guards stop */
	pthread_cond_t wake;
	int stop;
	int running;
};

/* interval 0: nothing is started. */
int publisher_start(struct publisher *p, struct fs *fs, double interval);
void publisher_stop(struct publisher *p);

#endif
