// SPDX-License-Identifier: GPL-2.0-only
/*
 * espintcp-conn: open an RFC 8229 TCP connection the way an IKE daemon
 * does, attach the espintcp ULP, print the connection's 4-tuple and hold
 * it open until standard input closes or a signal arrives.
 *
 *   espintcp-conn listen ADDR PORT          responder: accept one
 *                                           connection, read "IKETCP"
 *   espintcp-conn connect ADDR PORT [SPORT] originator: connect, write
 *                                           "IKETCP"
 *
 * With -d DEV first, the sockets are bound to that device
 * (SO_BINDTODEVICE), as a daemon in a VRF has them.
 *
 * Output, one line once the ULP is attached:
 *   local ADDR PORT remote ADDR PORT
 * which is what "ip xfrm state ... encap espintcp SPORT DPORT" needs.
 *
 * Then each line read from standard input is sent as an IKE message
 * (the non-ESP marker, then the line), and each IKE message received is
 * printed as "ike: TEXT".  End of input closes the connection.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/ipsec.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PREFIX		"IKETCP"
#define PREFIX_LEN	6

/* -d DEV: bind the sockets to a device (SO_BINDTODEVICE). */
static const char *bind_dev;

static void usage(void)
{
	fprintf(stderr,
		"usage: espintcp-conn [-d DEV] listen ADDR PORT\n"
		"       espintcp-conn [-d DEV] connect ADDR PORT [SPORT]\n");
	exit(2);
}

static void die(const char *what)
{
	fprintf(stderr, "espintcp-conn: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int resolve(const char *addr, const char *port, struct addrinfo **ai)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	};

	return getaddrinfo(addr, port, &hints, ai);
}

static void print_tuple(int fd)
{
	struct sockaddr_storage l, r;
	socklen_t ll = sizeof(l), rl = sizeof(r);
	char la[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN];
	char lp[8], rp[8];

	if (getsockname(fd, (struct sockaddr *)&l, &ll) ||
	    getpeername(fd, (struct sockaddr *)&r, &rl))
		die("getsockname");
	getnameinfo((struct sockaddr *)&l, ll, la, sizeof(la), lp, sizeof(lp),
		    NI_NUMERICHOST | NI_NUMERICSERV);
	getnameinfo((struct sockaddr *)&r, rl, ra, sizeof(ra), rp, sizeof(rp),
		    NI_NUMERICHOST | NI_NUMERICSERV);
	printf("local %s %s remote %s %s\n", la, lp, ra, rp);
	fflush(stdout);
}

/* As IKE daemons do: this socket's own packets bypass IPsec policy, or
 * a policy covering the peers would try to encrypt the ESP stream itself.
 */
static void bypass_policy(int fd, int family)
{
	struct xfrm_userpolicy_info pol = {
		.action = XFRM_POLICY_ALLOW,
		.sel.family = family,
		.lft = {
			.soft_byte_limit = XFRM_INF,
			.hard_byte_limit = XFRM_INF,
			.soft_packet_limit = XFRM_INF,
			.hard_packet_limit = XFRM_INF,
		},
	};
	int level = family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
	int opt = family == AF_INET6 ? IPV6_XFRM_POLICY : IP_XFRM_POLICY;
	int nl;

	/* The kernel compiles socket policies through a key manager:
	 * opening an XFRM netlink socket loads xfrm_user if need be.
	 */
	nl = socket(AF_NETLINK, SOCK_RAW, NETLINK_XFRM);
	if (nl >= 0)
		close(nl);

	pol.dir = XFRM_POLICY_IN;
	if (setsockopt(fd, level, opt, &pol, sizeof(pol)))
		die("bypass policy (in)");
	pol.dir = XFRM_POLICY_OUT;
	if (setsockopt(fd, level, opt, &pol, sizeof(pol)))
		die("bypass policy (out)");
}

static void bind_to_dev(int fd)
{
	if (bind_dev && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, bind_dev,
				   strlen(bind_dev) + 1))
		die("SO_BINDTODEVICE");
}

static int do_listen(struct addrinfo *ai)
{
	char pfx[PREFIX_LEN];
	size_t got = 0;
	int one = 1;
	int lfd, fd;

	lfd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	bypass_policy(lfd, ai->ai_family);
	bind_to_dev(lfd);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, ai->ai_addr, ai->ai_addrlen) || listen(lfd, 1))
		die("bind/listen");
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept");
	close(lfd);

	/* The responder reads exactly the stream prefix, then attaches. */
	while (got < PREFIX_LEN) {
		ssize_t n = read(fd, pfx + got, PREFIX_LEN - got);

		if (n <= 0) {
			fprintf(stderr, "espintcp-conn: connection closed before the stream prefix\n");
			exit(1);
		}
		got += n;
	}
	if (memcmp(pfx, PREFIX, PREFIX_LEN)) {
		fprintf(stderr, "espintcp-conn: bad stream prefix\n");
		exit(1);
	}
	return fd;
}

static int do_connect(struct addrinfo *ai, const char *sport)
{
	int fd, one = 1;

	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	bypass_policy(fd, ai->ai_family);
	bind_to_dev(fd);
	if (sport) {
		struct sockaddr_storage ss = { .ss_family = ai->ai_family };
		in_port_t p = htons(atoi(sport));

		if (ai->ai_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = p;
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = p;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&ss, sizeof(ss)))
			die("bind");
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen))
		die("connect");
	if (write(fd, PREFIX, PREFIX_LEN) != PREFIX_LEN)
		die("write stream prefix");
	return fd;
}

/* Marker + message; the module adds the length. */
static void send_line(int fd, const char *line, size_t len)
{
	char msg[4 + 4096] = { 0 };

	if (len > sizeof(msg) - 4)
		len = sizeof(msg) - 4;
	memcpy(msg + 4, line, len);
	if (send(fd, msg, 4 + len, 0) < 0)
		die("send");
}

static void relay(int fd)
{
	struct pollfd pfd[2] = {
		{ .fd = 0, .events = POLLIN },
		{ .fd = fd, .events = POLLIN },
	};
	char line[4096], msg[65536];
	size_t have = 0;

	for (;;) {
		if (poll(pfd, 2, -1) < 0)
			die("poll");
		if (pfd[1].revents) {
			ssize_t n = recv(fd, msg, sizeof(msg), 0);

			if (n <= 0) {
				if (n < 0)
					perror("espintcp-conn: recv");
				return;
			}
			printf("ike: %.*s\n", n > 4 ? (int)n - 4 : 0, msg + 4);
			fflush(stdout);
		}
		if (pfd[0].revents) {
			ssize_t n = read(0, line + have, sizeof(line) - have);
			char *nl;

			if (n <= 0)
				return;
			have += n;
			while ((nl = memchr(line, '\n', have))) {
				send_line(fd, line, nl - line);
				have -= nl + 1 - line;
				memmove(line, nl + 1, have);
			}
			if (have == sizeof(line)) {
				send_line(fd, line, have);
				have = 0;
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct addrinfo *ai;
	int fd;

	if (argc > 2 && !strcmp(argv[1], "-d")) {
		bind_dev = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc < 4)
		usage();
	if (resolve(argv[2], argv[3], &ai)) {
		fprintf(stderr, "espintcp-conn: bad address %s port %s\n",
			argv[2], argv[3]);
		return 2;
	}
	if (!strcmp(argv[1], "listen") && argc == 4)
		fd = do_listen(ai);
	else if (!strcmp(argv[1], "connect") && argc <= 5)
		fd = do_connect(ai, argc == 5 ? argv[4] : NULL);
	else
		usage();
	freeaddrinfo(ai);

	if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "espintcp",
		       sizeof("espintcp")))
		die("setsockopt(TCP_ULP, \"espintcp\")");
	print_tuple(fd);
	relay(fd);
	close(fd);
	return 0;
}
