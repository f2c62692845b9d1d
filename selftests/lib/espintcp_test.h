/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the espintcp selftests: a fresh network namespace
 * per test, loopback TCP pairs, attaching the ULP.
 */
#ifndef ESPINTCP_TEST_H
#define ESPINTCP_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define ESPINTCP_ULP	"espintcp"

/* Move the calling process into a new network namespace with lo up.
 * Returns 0 or -errno.
 */
static inline int espintcp_test_netns(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd, ret = 0;

	if (unshare(CLONE_NEWNET))
		return -errno;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr)))
		ret = -errno;
	close(fd);
	return ret;
}

/* A listening socket on the loopback address of @family, any port. */
static inline int espintcp_test_listener(int family)
{
	struct sockaddr_storage ss = { .ss_family = family };
	socklen_t len;
	int fd;

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Connect a TCP pair over loopback: *cfd is the connecting end, *sfd
 * the accepted one.  Returns 0, or -1 with errno set.
 */
static inline int espintcp_test_pair(int family, int *cfd, int *sfd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int lfd, c = -1, s = -1;

	lfd = espintcp_test_listener(family);
	if (lfd < 0)
		return -1;
	if (getsockname(lfd, (struct sockaddr *)&ss, &len))
		goto err;
	c = socket(family, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len))
		goto err;
	s = accept(lfd, NULL, NULL);
	if (s < 0)
		goto err;
	close(lfd);
	*cfd = c;
	*sfd = s;
	return 0;
err:
	if (c >= 0)
		close(c);
	close(lfd);
	return -1;
}

static inline int espintcp_test_attach(int fd)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_ULP, ESPINTCP_ULP,
			  sizeof(ESPINTCP_ULP));
}

/* True if getsockopt(TCP_ULP) names our ULP. */
static inline bool espintcp_test_attached(int fd)
{
	char name[16] = "";
	socklen_t len = sizeof(name);

	if (getsockopt(fd, IPPROTO_TCP, TCP_ULP, name, &len))
		return false;
	return !strcmp(name, ESPINTCP_ULP);
}

#endif /* ESPINTCP_TEST_H */
