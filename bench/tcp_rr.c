// SPDX-License-Identifier: GPL-2.0-only
/*
 * tcp_rr: TCP request/response latency, for make bench.
 *
 *   tcp_rr server ADDR PORT                 answer each SIZE-byte request
 *                                           with SIZE bytes, one
 *                                           connection, until it closes
 *   tcp_rr client ADDR PORT SECONDS [SIZE]  send a request, wait for the
 *                                           answer, again, for SECONDS
 *
 * SIZE is 64 bytes unless given (the same on both sides).  The server
 * prints "listening" once it listens.  The client prints one JSON
 * object: transactions, transactions per second, and the mean, median
 * and 99th percentile of the round-trip times in microseconds.
 */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE	65536

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static struct addrinfo *resolve(const char *addr, const char *port)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	};
	struct addrinfo *ai;
	int err;

	err = getaddrinfo(addr, port, &hints, &ai);
	if (err) {
		fprintf(stderr, "tcp_rr: %s %s: %s\n", addr, port,
			gai_strerror(err));
		exit(2);
	}
	return ai;
}

/* Read exactly len bytes; 0 at a clean end of stream before any. */
static int read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0) {
			if (got)
				die("short request");
			return 0;
		}
		got += n;
	}
	return 1;
}

static void write_full(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write");
		buf += n;
		len -= n;
	}
}

static void nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		die("TCP_NODELAY");
}

static int server(struct addrinfo *ai, size_t size)
{
	static char buf[MAX_SIZE];
	int one = 1, l, fd;

	l = socket(ai->ai_family, SOCK_STREAM, 0);
	if (l < 0)
		die("socket");
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, ai->ai_addr, ai->ai_addrlen) || listen(l, 1))
		die("bind/listen");
	printf("listening\n");
	fflush(stdout);
	fd = accept(l, NULL, NULL);
	if (fd < 0)
		die("accept");
	close(l);
	nodelay(fd);
	while (read_full(fd, buf, size))
		write_full(fd, buf, size);
	close(fd);
	return 0;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int client(struct addrinfo *ai, double seconds, size_t size)
{
	static char buf[MAX_SIZE];
	size_t n = 0, cap = 1 << 16;
	double *rtt, start, end, t, sum = 0;
	int fd;

	rtt = malloc(cap * sizeof(*rtt));
	if (!rtt)
		die("malloc");
	memset(buf, 'r', size);
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, ai->ai_addr, ai->ai_addrlen))
		die("connect");
	nodelay(fd);

	start = now_us();
	end = start + seconds * 1e6;
	for (t = start; t < end; ) {
		double t0 = t;

		write_full(fd, buf, size);
		if (!read_full(fd, buf, size)) {
			fprintf(stderr, "tcp_rr: the server closed\n");
			return 1;
		}
		t = now_us();
		if (n == cap) {
			double *more = realloc(rtt, 2 * cap * sizeof(*rtt));

			if (!more)
				die("realloc");
			rtt = more;
			cap *= 2;
		}
		rtt[n++] = t - t0;
		sum += t - t0;
	}
	close(fd);
	if (!n) {
		fprintf(stderr, "tcp_rr: no transaction\n");
		return 1;
	}
	qsort(rtt, n, sizeof(*rtt), cmp_double);
	printf("{\"transactions\": %zu, \"tps\": %.1f, \"mean_us\": %.1f, "
	       "\"p50_us\": %.1f, \"p99_us\": %.1f}\n",
	       n, n / ((t - start) / 1e6), sum / n, rtt[n / 2],
	       rtt[(size_t)((n - 1) * 0.99)]);
	free(rtt);
	return 0;
}

int main(int argc, char **argv)
{
	size_t size = 64;

	if (argc >= 4 && !strcmp(argv[1], "server")) {
		if (argc > 4)
			size = strtoul(argv[4], NULL, 0);
		if (!size || size > MAX_SIZE)
			return 2;
		return server(resolve(argv[2], argv[3]), size);
	}
	if (argc >= 5 && !strcmp(argv[1], "client")) {
		if (argc > 5)
			size = strtoul(argv[5], NULL, 0);
		if (!size || size > MAX_SIZE)
			return 2;
		return client(resolve(argv[2], argv[3]), atof(argv[4]), size);
	}
	fprintf(stderr, "usage: tcp_rr server ADDR PORT [SIZE]\n"
		"       tcp_rr client ADDR PORT SECONDS [SIZE]\n");
	return 2;
}
