/*
 * stop_clock: shutdown_timeout counts from the stop. See stop_clock.h.
 */
#include "fs/stop_clock.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/http.h"

static const int stop_sigs[] = {SIGHUP, SIGINT, SIGTERM};
#define NSIGS (sizeof(stop_sigs) / sizeof(stop_sigs[0]))

static struct sigaction wrapped[NSIGS];
static int is_wrapped[NSIGS];
static int64_t length_ns;
static int started;

void stop_clock_init(double shutdown_timeout)
{
	length_ns = (int64_t)(shutdown_timeout * 1e9);
}

void stop_clock_start(void)
{
	int none = 0;
	if (__atomic_compare_exchange_n(&started, &none, 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		http_abandon_at((double)(mono_ns() + length_ns) / 1e9);
}

double stop_clock_left(void)
{
	/* The deadline, once started, is the one transfers are abandoned at. */
	double left = http_abandon_left();
	return left < 0 ? (double)length_ns / 1e9 : left;
}

static void on_stop(int sig, siginfo_t *info, void *ctx)
{
	stop_clock_start();
	for (size_t k = 0; k < NSIGS; k++) {
		if (stop_sigs[k] != sig)
			continue;
		if (wrapped[k].sa_flags & SA_SIGINFO)
			wrapped[k].sa_sigaction(sig, info, ctx);
		else
			wrapped[k].sa_handler(sig);
	}
}

void stop_clock_wrap_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_stop;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	for (size_t k = 0; k < NSIGS; k++) {
		/* Only a signal libfuse handles: one ignored (nohup) stays so. */
		if (sigaction(stop_sigs[k], NULL, &wrapped[k]) != 0 ||
		    (!(wrapped[k].sa_flags & SA_SIGINFO) &&
		     (wrapped[k].sa_handler == SIG_IGN || wrapped[k].sa_handler == SIG_DFL)))
			continue;
		is_wrapped[k] = sigaction(stop_sigs[k], &sa, NULL) == 0;
	}
}

void stop_clock_unwrap_signals(void)
{
	for (size_t k = 0; k < NSIGS; k++)
		if (is_wrapped[k]) {
			sigaction(stop_sigs[k], &wrapped[k], NULL);
			is_wrapped[k] = 0;
		}
}
