/*
 * metrics_serve: the /metrics endpoint, a minimal HTTP/1.1 server on plain
 * sockets. One thread accepts one connection at a time, reads the request
 * head (at most 8 KiB, 5 s), answers and closes: a Prometheus scrape every
 * few seconds needs nothing more. GET or HEAD /metrics is 200 with the text
 * exposition, another method on it 405, any other path 404.
 *
 * serve_lock guards the server state below (start, stop); the thread itself
 * only reads listen_fd and stop_pipe, which stay open until it is joined.
 */
#include "common/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/hostport.h"
#include "common/log.h"

#define HEAD_MAX 8192
#define IO_TIMEOUT_S 5

static pthread_mutex_t serve_lock = PTHREAD_MUTEX_INITIALIZER;
static int listen_fd = -1;
static int stop_pipe[2] = {-1, -1};
static pthread_t thread;
static int running;

static int listen_on(const char *addr_port, char *err, size_t errlen)
{
	char host[256], port[8];
	int rc = hostport_split(addr_port, host, sizeof(host), port, sizeof(port), err, errlen);
	if (rc < 0)
		return rc;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (g != 0) {
		snprintf(err, errlen, "metrics=%s: cannot resolve '%s': %s", addr_port, host,
			 gai_strerror(g));
		return -EINVAL;
	}
	int fd = -1, saved = 0;
	/* Every address: prefer a dual-stack IPv6 socket. */
	for (int pass = 0; pass < 2 && fd < 0; pass++)
		for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
			if (!host[0] && (pass == 0) != (ai->ai_family == AF_INET6))
				continue;
			if (host[0] && pass == 1)
				break;
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd < 0) {
				saved = errno;
				continue;
			}
			int one = 1, zero = 0;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (ai->ai_family == AF_INET6 && !host[0])
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0) {
				saved = errno;
				close(fd);
				fd = -1;
			}
		}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "metrics=%s: cannot listen: %s", addr_port,
			 strerror(saved ? saved : EADDRNOTAVAIL));
		return -(saved ? saved : EADDRNOTAVAIL);
	}
	return fd;
}

int metrics_serve_bind(const char *addr_port, char *err, size_t errlen)
{
	pthread_mutex_lock(&serve_lock);
	int rc = 0;
	if (listen_fd < 0) {
		rc = listen_on(addr_port, err, errlen);
		if (rc >= 0) {
			listen_fd = rc;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&serve_lock);
	return rc;
}

static void send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void reply(int fd, int head_only, const char *status, const char *ctype,
		  const char *body, size_t len)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n", status, ctype, len);
	send_all(fd, hdr, (size_t)n);
	if (!head_only)
		send_all(fd, body, len);
}

static void serve_one(int fd)
{
	struct timeval tv = {IO_TIMEOUT_S, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	char head[HEAD_MAX + 1];
	size_t len = 0;
	while (len < HEAD_MAX) {
		ssize_t n = recv(fd, head + len, HEAD_MAX - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		head[len] = '\0';
		if (strstr(head, "\r\n\r\n") || strstr(head, "\n\n"))
			break;
	}
	head[len] = '\0';
	char method[16] = "", target[1024] = "";
	if (sscanf(head, "%15s %1023s", method, target) != 2) {
		reply(fd, 0, "400 Bad Request", "text/plain", "bad request\n", 12);
		return;
	}
	target[strcspn(target, "?#")] = '\0';
	int get = strcmp(method, "GET") == 0, headreq = strcmp(method, "HEAD") == 0;
	if (strcmp(target, "/metrics") != 0) {
		reply(fd, headreq, "404 Not Found", "text/plain", "not found\n", 10);
	} else if (!get && !headreq) {
		reply(fd, 0, "405 Method Not Allowed", "text/plain", "method not allowed\n", 19);
	} else {
		struct buf body = BUF_INIT;
		metrics_render(&body);
		reply(fd, headreq, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
		      body.data, body.len);
		buf_free(&body);
	}
}

static void *serve_thread(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the mount's to handle */
	struct pollfd pf[2] = {{.fd = listen_fd, .events = POLLIN},
			       {.fd = stop_pipe[0], .events = POLLIN}};
	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("metrics: poll: %s", strerror(errno));
			break;
		}
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue; /* ECONNABORTED, EMFILE...: try again at the next one */
		serve_one(c);
		close(c);
	}
	return NULL;
}

int metrics_serve_start(const char *addr_port, char *err, size_t errlen)
{
	int rc = metrics_serve_bind(addr_port, err, errlen);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&serve_lock);
	if (!running) {
		if (pipe2(stop_pipe, O_CLOEXEC) < 0) {
			rc = -errno;
		} else {
			rc = -pthread_create(&thread, NULL, serve_thread, NULL);
			if (rc < 0) {
				close(stop_pipe[0]);
				close(stop_pipe[1]);
				stop_pipe[0] = stop_pipe[1] = -1;
			}
		}
		if (rc < 0)
			snprintf(err, errlen, "metrics: cannot start the server: %s", strerror(-rc));
		else
			running = 1;
	}
	pthread_mutex_unlock(&serve_lock);
	if (rc == 0)
		log_info("metrics: serving /metrics on %s", addr_port);
	return rc;
}

void metrics_serve_stop(void)
{
	pthread_mutex_lock(&serve_lock);
	if (running) {
		char c = 0;
		while (write(stop_pipe[1], &c, 1) < 0 && errno == EINTR)
			;
		pthread_join(thread, NULL);
		close(stop_pipe[0]);
		close(stop_pipe[1]);
		stop_pipe[0] = stop_pipe[1] = -1;
		running = 0;
	}
	if (listen_fd >= 0) {
		close(listen_fd);
		listen_fd = -1;
	}
	pthread_mutex_unlock(&serve_lock);
}
