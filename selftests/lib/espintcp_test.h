/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the espintcp selftests: a fresh network namespace
 * per test, loopback TCP pairs, attaching the ULP.
 */
#ifndef ESPINTCP_TEST_H
#define ESPINTCP_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Two network namespaces, "a" and "b", joined by veth, with
 * 198.51.100.1 / 2001:db8::1 in a and 198.51.100.2 / 2001:db8::2 in b
 * (documentation prefixes; they exist only inside the test VM).  ESP
 * that the ULP injects is routed again, so it must come from a real
 * neighbour: loopback sources are martians.  The caller ends up in a.
 */
struct espintcp_veth {
	char a[32], b[32];
	int fda, fdb;
};

static inline int espintcp_veth_setup(struct espintcp_veth *v)
{
	char cmd[1024], path[64];
	int pid = getpid();

	snprintf(v->a, sizeof(v->a), "esptest-a-%d", pid);
	snprintf(v->b, sizeof(v->b), "esptest-b-%d", pid);
	snprintf(cmd, sizeof(cmd),
		 "set -e; ip netns add %1$s; ip netns add %2$s;"
		 "ip link add veth0 netns %1$s type veth peer name veth0 netns %2$s;"
		 "ip -n %1$s link set lo up; ip -n %2$s link set lo up;"
		 "ip -n %1$s addr add 198.51.100.1/24 dev veth0;"
		 "ip -n %2$s addr add 198.51.100.2/24 dev veth0;"
		 "ip -n %1$s addr add 2001:db8::1/64 dev veth0 nodad;"
		 "ip -n %2$s addr add 2001:db8::2/64 dev veth0 nodad;"
		 "ip -n %1$s link set veth0 up; ip -n %2$s link set veth0 up",
		 v->a, v->b);
	if (system(cmd))
		return -1;
	snprintf(path, sizeof(path), "/run/netns/%s", v->a);
	v->fda = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "/run/netns/%s", v->b);
	v->fdb = open(path, O_RDONLY);
	if (v->fda < 0 || v->fdb < 0)
		return -1;
	return setns(v->fda, CLONE_NEWNET);
}

static inline void espintcp_veth_teardown(struct espintcp_veth *v)
{
	char cmd[128];
	int ret;

	close(v->fda);
	close(v->fdb);
	snprintf(cmd, sizeof(cmd), "ip netns del %s; ip netns del %s",
		 v->a, v->b);
	ret = system(cmd);
	(void)ret;
}

/* A TCP connection from b (*bfd, connecting) to a (*afd, accepted). */
static inline int espintcp_veth_pair(struct espintcp_veth *v, int family,
				     int *afd, int *bfd)
{
	struct sockaddr_storage ss = { .ss_family = family };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = family == AF_INET ? sizeof(*sin) : sizeof(*sin6);
	int lfd, c, s;

	if (family == AF_INET)
		inet_pton(AF_INET, "198.51.100.1", &sin->sin_addr);
	else
		inet_pton(AF_INET6, "2001:db8::1", &sin6->sin6_addr);
	lfd = socket(family, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, len) ||
	    listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&ss, &len))
		return -1;
	if (setns(v->fdb, CLONE_NEWNET))
		return -1;
	c = socket(family, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&ss, len))
		return -1;
	if (setns(v->fda, CLONE_NEWNET))
		return -1;
	s = accept(lfd, NULL, NULL);
	close(lfd);
	if (s < 0)
		return -1;
	*afd = s;
	*bfd = c;
	return 0;
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

/* RFC 9329 framing: a 16-bit big-endian length that counts itself. */
#define ESPINTCP_HDR		2
#define ESPINTCP_MAX_PAYLOAD	(65535 - ESPINTCP_HDR)

static inline int espintcp_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Read exactly @len bytes; returns what was read (less on EOF/error). */
static inline size_t espintcp_read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	return got;
}

/* Put the frame for @len payload bytes at @out (header + payload);
 * returns the frame's size.
 */
static inline size_t espintcp_frame(uint8_t *out, const void *payload,
				    size_t len)
{
	out[0] = (len + ESPINTCP_HDR) >> 8;
	out[1] = (len + ESPINTCP_HDR) & 0xff;
	memcpy(out + ESPINTCP_HDR, payload, len);
	return len + ESPINTCP_HDR;
}

/* Write one frame with a raw length field (for malformed lengths). */
static inline int espintcp_write_frame(int fd, const void *payload,
				       size_t len)
{
	uint8_t *buf = malloc(len + ESPINTCP_HDR);
	int ret;

	if (!buf)
		return -1;
	espintcp_frame(buf, payload, len);
	ret = espintcp_write_all(fd, buf, len + ESPINTCP_HDR);
	free(buf);
	return ret;
}

/* An IKE message as user space sends and receives it: the 4-byte
 * non-ESP marker, then bytes derived from @seq.
 */
static inline void espintcp_ike_fill(uint8_t *buf, size_t len, uint32_t seq)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = i < 4 ? 0 : (uint8_t)(seq * 131 + i);
}

static inline bool espintcp_ike_check(const uint8_t *buf, size_t len,
				      uint32_t seq)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (buf[i] != (i < 4 ? 0 : (uint8_t)(seq * 131 + i)))
			return false;
	return true;
}

/* An ESP packet: SPI (never zero), sequence number, then filler. */
static inline void espintcp_esp_fill(uint8_t *buf, size_t len, uint32_t spi,
				     uint32_t seq)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(0xa5 + i);
	for (i = 0; i < 4 && i < len; i++)
		buf[i] = spi >> (24 - 8 * i);
	for (i = 4; i < 8 && i < len; i++)
		buf[i] = seq >> (56 - 8 * i);
}

/* A counter from a /proc/net snmp-style file, or -1 without the file. */
static inline long long espintcp_proc_stat(const char *file, const char *name)
{
	char key[64];
	long long val, ret = -1;
	FILE *f = fopen(file, "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", key, &val) == 2)
		if (!strcmp(key, name)) {
			ret = val;
			break;
		}
	fclose(f);
	return ret;
}

#define xfrm_stat(name)		espintcp_proc_stat("/proc/net/xfrm_stat", name)
#define espintcp_stat(name)	espintcp_proc_stat("/proc/net/espintcp_stat", name)

/* Our module's own counters exist (not on the upstream parity kernel). */
static inline bool espintcp_have_stats(void)
{
	return !access("/proc/net/espintcp_stat", R_OK);
}

/* The run against upstream's espintcp (make parity). */
static inline bool espintcp_parity_run(void)
{
	return getenv("ESPINTCP_PARITY") != NULL;
}

/* In a kselftest_harness test: run fixture @f over IPv4 and over IPv6
 * (variant->family).
 */
#define ESPINTCP_FAMILY_VARIANTS(f)					\
	FIXTURE_VARIANT(f) {						\
		int family;						\
	};								\
	FIXTURE_VARIANT_ADD(f, ipv4) {					\
		.family = AF_INET,					\
	};								\
	FIXTURE_VARIANT_ADD(f, ipv6) {					\
		.family = AF_INET6,					\
	}

/* In a kselftest_harness test: behaviour where this module differs from
 * upstream on purpose (Documentation/espintcp.rst lists each); the test
 * is skipped on the parity run against upstream's implementation.
 */
#define DELIBERATE_DIFFERENCE(why)					\
	do {								\
		if (espintcp_parity_run())				\
			SKIP(return, "deliberate difference: " why);	\
	} while (0)

/* A test that upstream's implementation fails through a bug of its own
 * (Documentation/espintcp.rst lists each): skipped on the parity run,
 * where the bug may WARN and, with panic_on_warn, end the whole run.
 */
#define UPSTREAM_BUG(why)						\
	do {								\
		if (espintcp_parity_run())				\
			SKIP(return, "upstream bug: " why);		\
	} while (0)

#endif /* ESPINTCP_TEST_H */
