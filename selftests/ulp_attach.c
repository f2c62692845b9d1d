// SPDX-License-Identifier: GPL-2.0-only
/*
 * Attaching the espintcp ULP: which sockets accept it and with which
 * errno the others refuse it.  The errnos are upstream's (Linux 6.1
 * net/ipv4/tcp_ulp.c and net/xfrm/espintcp.c) unless marked as a
 * deliberate difference.
 */

#include "kselftest_harness.h"
#include "lib/espintcp_test.h"

FIXTURE(attach)
{
	int c, s;
};

ESPINTCP_FAMILY_VARIANTS(attach);

FIXTURE_SETUP(attach)
{
	ASSERT_EQ(espintcp_test_netns(), 0);
	ASSERT_EQ(espintcp_test_pair(variant->family, &self->c, &self->s), 0);
}

FIXTURE_TEARDOWN(attach)
{
	close(self->c);
	close(self->s);
}

/* Both ends of an established connection take the ULP, and
 * getsockopt(TCP_ULP) names it afterwards.
 */
TEST_F(attach, established)
{
	EXPECT_FALSE(espintcp_test_attached(self->c));
	ASSERT_EQ(espintcp_test_attach(self->c), 0);
	ASSERT_EQ(espintcp_test_attach(self->s), 0);
	EXPECT_TRUE(espintcp_test_attached(self->c));
	EXPECT_TRUE(espintcp_test_attached(self->s));
}

/* A second attach is refused by the TCP ULP core: EEXIST. */
TEST_F(attach, twice)
{
	ASSERT_EQ(espintcp_test_attach(self->c), 0);
	ASSERT_EQ(espintcp_test_attach(self->c), -1);
	EXPECT_EQ(errno, EEXIST);
	EXPECT_TRUE(espintcp_test_attached(self->c));
}

/* A ULP socket cannot become a listener (CVE-2023-0461): disconnect,
 * then listen() fails with EINVAL.
 */
TEST_F(attach, no_listen_after_disconnect)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };

	ASSERT_EQ(espintcp_test_attach(self->c), 0);
	ASSERT_EQ(connect(self->c, &sa, sizeof(sa)), 0);
	ASSERT_EQ(listen(self->c, 1), -1);
	EXPECT_EQ(errno, EINVAL);
}

FIXTURE(sock)
{
	int fd;
};

ESPINTCP_FAMILY_VARIANTS(sock);

FIXTURE_SETUP(sock)
{
	ASSERT_EQ(espintcp_test_netns(), 0);
	self->fd = -1;
}

FIXTURE_TEARDOWN(sock)
{
	if (self->fd >= 0)
		close(self->fd);
}

/* A listening socket has no clone hook for the ULP: the TCP ULP core
 * refuses it with ENOTCONN.
 */
TEST_F(sock, listening)
{
	self->fd = espintcp_test_listener(variant->family);
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(espintcp_test_attach(self->fd), -1);
	EXPECT_EQ(errno, ENOTCONN);
	EXPECT_FALSE(espintcp_test_attached(self->fd));
}

/* Deliberate difference: upstream attaches to a socket that has no
 * connection yet; we refuse with ENOTCONN, the errno the ULP core
 * gives listeners, because there is no stream to frame (see
 * Documentation/espintcp.rst, "Differences from upstream").
 */
TEST_F(sock, unconnected)
{
	DELIBERATE_DIFFERENCE("attach needs a connection");
	self->fd = socket(variant->family, SOCK_STREAM, 0);
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(espintcp_test_attach(self->fd), -1);
	EXPECT_EQ(errno, ENOTCONN);
	EXPECT_FALSE(espintcp_test_attached(self->fd));
}

TEST_HARNESS_MAIN
