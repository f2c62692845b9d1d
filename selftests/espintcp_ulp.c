// SPDX-License-Identifier: GPL-2.0-only
/*
 * The espintcp ULP as user space sees it: stream parsing, IKE messages
 * to and from user space, ESP into XFRM, keep-alives, malformed frames,
 * close and reset.  Each test runs in a fresh network namespace over a
 * loopback TCP pair.
 *
 * These tests encode upstream's behaviour (net/xfrm/espintcp.c) so that
 * they pass against it too ('make parity').  Where this module differs
 * on purpose, the test says so with DELIBERATE_DIFFERENCE() and is
 * skipped on the parity run; Documentation/espintcp.rst lists them all.
 */

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>

#include "kselftest_harness.h"
#include "lib/espintcp_test.h"

#define RECV_BUF	(ESPINTCP_MAX_PAYLOAD + 1024)

static void load_esp(void)
{
	/* XFRM hands ESP to the esp4/esp6 protocol handlers.  Built in
	 * or missing: the ESP tests will tell.
	 */
	int ret = system("modprobe -q esp4 2>/dev/null; modprobe -q esp6 2>/dev/null");

	(void)ret;
}

static void set_timeo(int fd, int opt, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000 };

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Make room for bulk tests: upstream charges each queued IKE message
 * the truesize of the whole TCP segment it came in, so many messages
 * from one segment overflow the default receive buffer there.
 */
static void big_rcvbuf(int fd)
{
	int sz = 16 << 20;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
}

/* Write a run of frames (IKE messages of the given sizes, seq from
 * @seq0) as one write.
 */
static int write_ike_frames(int fd, const size_t *sizes, int n, uint32_t seq0)
{
	static uint8_t msg[ESPINTCP_MAX_PAYLOAD];
	size_t total = 0, off = 0;
	uint8_t *buf;
	int i, ret;

	for (i = 0; i < n; i++)
		total += sizes[i] + ESPINTCP_HDR;
	buf = malloc(total);
	if (!buf)
		return -1;
	for (i = 0; i < n; i++) {
		espintcp_ike_fill(msg, sizes[i], seq0 + i);
		off += espintcp_frame(buf + off, msg, sizes[i]);
	}
	ret = espintcp_write_all(fd, buf, total);
	free(buf);
	return ret;
}

static int write_ike(int fd, size_t len, uint32_t seq)
{
	return write_ike_frames(fd, &len, 1, seq);
}

/* Receive one IKE message and check it is message @seq of @len bytes. */
static bool recv_ike(int fd, size_t len, uint32_t seq)
{
	static uint8_t buf[RECV_BUF];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);

	return n == (ssize_t)len && espintcp_ike_check(buf, len, seq);
}

static int write_esp(int fd, size_t len, uint32_t spi, uint32_t seq)
{
	uint8_t *buf = malloc(len);
	int ret;

	if (!buf)
		return -1;
	espintcp_esp_fill(buf, len, spi, seq);
	ret = espintcp_write_frame(fd, buf, len);
	free(buf);
	return ret;
}

static bool nothing_to_recv(int fd)
{
	char b[16];

	return recv(fd, b, sizeof(b), MSG_DONTWAIT) == -1 && errno == EAGAIN;
}

/* u: the end with the ULP; r: a plain TCP peer writing raw bytes, in
 * another network namespace (ESP must come from a real neighbour).
 */
FIXTURE(raw)
{
	int u, r;
	struct espintcp_veth veth;
};

ESPINTCP_FAMILY_VARIANTS(raw);

FIXTURE_SETUP(raw)
{
	int one = 1;

	load_esp();
	ASSERT_EQ(espintcp_veth_setup(&self->veth), 0);
	ASSERT_EQ(espintcp_veth_pair(&self->veth, variant->family,
				     &self->u, &self->r), 0);
	setsockopt(self->r, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ASSERT_EQ(espintcp_test_attach(self->u), 0);
	/* A test that goes wrong fails instead of hanging. */
	set_timeo(self->u, SO_RCVTIMEO, 10000);
	set_timeo(self->r, SO_RCVTIMEO, 10000);
}

FIXTURE_TEARDOWN(raw)
{
	close(self->u);
	close(self->r);
	espintcp_veth_teardown(&self->veth);
}

/* recv returns the marker and the message, without the length field. */
TEST_F(raw, ike_recv_one)
{
	uint8_t buf[256];

	ASSERT_EQ(write_ike(self->r, 100, 7), 0);
	ASSERT_EQ(recv(self->u, buf, sizeof(buf), 0), 100);
	EXPECT_TRUE(espintcp_ike_check(buf, 100, 7));
	EXPECT_TRUE(nothing_to_recv(self->u));
}

/* send prepends the length, which counts itself. */
TEST_F(raw, ike_send_framing)
{
	uint8_t msg[100], wire[102];

	espintcp_ike_fill(msg, sizeof(msg), 3);
	ASSERT_EQ(send(self->u, msg, sizeof(msg), 0), sizeof(msg));
	ASSERT_EQ(espintcp_read_all(self->r, wire, sizeof(wire)), sizeof(wire));
	EXPECT_EQ(wire[0], 0);
	EXPECT_EQ(wire[1], 102);
	EXPECT_EQ(memcmp(wire + 2, msg, sizeof(msg)), 0);
}

/* TCP_INFO as the kernel has it since 4.2; glibc's struct stops at
 * tcpi_total_retrans.
 */
struct tcp_info_segs {
	struct tcp_info glibc;
	uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
	uint32_t segs_out, segs_in;
};

static unsigned int segs_out(int fd)
{
	struct tcp_info_segs ti = { 0 };
	socklen_t len = sizeof(ti);

	getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
	return ti.segs_out;
}

/* A small IKE message leaves as one TCP segment, length field included
 * (the ULP side keeps Nagle on, as IKE daemons do): sent in two pieces,
 * the first would go alone and Nagle would hold the rest until the
 * peer's delayed ACK.
 */
TEST_F(raw, ike_send_one_segment)
{
	uint8_t msg[200], wire[202];
	unsigned int before;
	int i;

	espintcp_ike_fill(msg, sizeof(msg), 4);
	for (i = 0; i < 10; i++) {
		before = segs_out(self->u);
		ASSERT_EQ(send(self->u, msg, sizeof(msg), 0), sizeof(msg));
		ASSERT_EQ(espintcp_read_all(self->r, wire, sizeof(wire)), sizeof(wire));
		EXPECT_EQ(segs_out(self->u) - before, 1) TH_LOG("message %d", i);
	}
}

static const size_t edge_sizes[] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 255,
	256, 257, 511, 512, 1023, 1024, 1025, 1399, 1400, 1500, 2047, 2048,
	4095, 4096, 4097, 8191, 8192, 16383, 16384, 32767, 32768, 32769,
	65000, 65531, 65532, ESPINTCP_MAX_PAYLOAD,
};

/* Every size a frame can carry, as sent by user space. */
TEST_F(raw, ike_send_sizes)
{
	static uint8_t msg[ESPINTCP_MAX_PAYLOAD], wire[ESPINTCP_MAX_PAYLOAD + 2];
	size_t i, len;

	for (i = 0; i < sizeof(edge_sizes) / sizeof(edge_sizes[0]); i++) {
		len = edge_sizes[i];
		espintcp_ike_fill(msg, len, i);
		ASSERT_EQ(send(self->u, msg, len, 0), len);
		ASSERT_EQ(espintcp_read_all(self->r, wire, len + 2), len + 2);
		ASSERT_EQ((wire[0] << 8 | wire[1]), len + 2);
		ASSERT_EQ(memcmp(wire + 2, msg, len), 0) TH_LOG("size %zu", len);
	}
	/* And every size from 1 to 1500, where IKE messages live. */
	for (len = 1; len <= 1500; len++) {
		espintcp_ike_fill(msg, len, len);
		ASSERT_EQ(send(self->u, msg, len, 0), len);
		ASSERT_EQ(espintcp_read_all(self->r, wire, len + 2), len + 2);
		ASSERT_EQ((wire[0] << 8 | wire[1]), len + 2);
		ASSERT_EQ(memcmp(wire + 2, msg, len), 0) TH_LOG("size %zu", len);
	}
}

/* Every size an IKE frame can carry (marker + at least one byte), as
 * received by user space.
 */
TEST_F(raw, ike_recv_sizes)
{
	size_t i, len;

	big_rcvbuf(self->u);
	for (i = 0; i < sizeof(edge_sizes) / sizeof(edge_sizes[0]); i++) {
		len = edge_sizes[i];
		if (len <= 4)
			continue;
		ASSERT_EQ(write_ike(self->r, len, i), 0);
		ASSERT_TRUE(recv_ike(self->u, len, i)) TH_LOG("size %zu", len);
	}
	for (len = 5; len <= 1500; len++) {
		ASSERT_EQ(write_ike(self->r, len, len), 0);
		ASSERT_TRUE(recv_ike(self->u, len, len)) TH_LOG("size %zu", len);
	}
}

/* More than a frame can hold: EMSGSIZE, nothing written. */
TEST_F(raw, ike_send_too_big)
{
	static uint8_t msg[ESPINTCP_MAX_PAYLOAD + 1];

	ASSERT_EQ(send(self->u, msg, sizeof(msg), 0), -1);
	EXPECT_EQ(errno, EMSGSIZE);
	ASSERT_EQ(send(self->u, msg, sizeof(msg), MSG_DONTWAIT), -1);
	EXPECT_EQ(errno, EMSGSIZE);
	EXPECT_TRUE(nothing_to_recv(self->r));
}

/* Flags other than MSG_DONTWAIT and control messages: EOPNOTSUPP. */
TEST_F(raw, ike_send_unsupported)
{
	static const int flags[] = { MSG_MORE, MSG_OOB, MSG_EOR, MSG_NOSIGNAL };
	uint8_t msg[32] = { 0 }, cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { msg, sizeof(msg) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	size_t i;

	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		ASSERT_EQ(send(self->u, msg, sizeof(msg), flags[i]), -1);
		EXPECT_EQ(errno, EOPNOTSUPP) TH_LOG("flag %#x", flags[i]);
	}
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SO_MARK;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	ASSERT_EQ(sendmsg(self->u, &mh, 0), -1);
	EXPECT_EQ(errno, EOPNOTSUPP);
	EXPECT_TRUE(nothing_to_recv(self->r));

	/* MSG_DONTWAIT and O_NONBLOCK are fine. */
	ASSERT_EQ(send(self->u, msg, sizeof(msg), MSG_DONTWAIT), sizeof(msg));
	ASSERT_EQ(fcntl(self->u, F_SETFL, O_NONBLOCK), 0);
	ASSERT_EQ(send(self->u, msg, sizeof(msg), 0), sizeof(msg));
}

/* A stream that arrives one byte per segment. */
TEST_F(raw, byte_at_a_time)
{
	static const size_t sizes[] = { 20, 5, 37, 64 };
	uint8_t buf[512], msg[64];
	size_t i, n = 0, off;

	for (i = 0; i < 4; i++) {
		espintcp_ike_fill(msg, sizes[i], i);
		n += espintcp_frame(buf + n, msg, sizes[i]);
		if (i == 1) {	/* and a keep-alive */
			buf[n++] = 0;
			buf[n++] = 3;
			buf[n++] = 0xff;
		}
	}
	for (off = 0; off < n; off++) {
		ASSERT_EQ(write(self->r, buf + off, 1), 1);
		usleep(500);
	}
	for (i = 0; i < 4; i++)
		ASSERT_TRUE(recv_ike(self->u, sizes[i], i)) TH_LOG("msg %zu", i);
	EXPECT_TRUE(nothing_to_recv(self->u));
}

/* Many frames in one write, each delivered on its own. */
TEST_F(raw, many_frames_one_write)
{
	size_t sizes[300];
	int i;

	big_rcvbuf(self->u);
	for (i = 0; i < 300; i++)
		sizes[i] = 5 + (i * 37) % 200;
	ASSERT_EQ(write_ike_frames(self->r, sizes, 300, 1000), 0);
	for (i = 0; i < 300; i++)
		ASSERT_TRUE(recv_ike(self->u, sizes[i], 1000 + i)) TH_LOG("msg %d", i);
	EXPECT_TRUE(nothing_to_recv(self->u));
}

/* The same with the default receive buffer: upstream charges every
 * message the truesize of the whole segment and drops most of them.
 */
TEST_F(raw, many_frames_default_rcvbuf)
{
	size_t sizes[100];
	int i;

	DELIBERATE_DIFFERENCE("IKE messages are charged their own size");
	for (i = 0; i < 100; i++)
		sizes[i] = 64;
	ASSERT_EQ(write_ike_frames(self->r, sizes, 100, 0), 0);
	for (i = 0; i < 100; i++)
		ASSERT_TRUE(recv_ike(self->u, 64, i)) TH_LOG("msg %d", i);
}

/* Keep-alives (00 03 FF) among IKE messages are never delivered. */
TEST_F(raw, keepalives_interleaved)
{
	static const uint8_t ka[3] = { 0, 3, 0xff };
	long long before = espintcp_stat("KeepaliveIn");
	uint8_t msg[40];

	ASSERT_EQ(espintcp_write_all(self->r, ka, 3), 0);
	espintcp_ike_fill(msg, sizeof(msg), 1);
	ASSERT_EQ(espintcp_write_frame(self->r, msg, sizeof(msg)), 0);
	ASSERT_EQ(espintcp_write_all(self->r, ka, 3), 0);
	ASSERT_EQ(espintcp_write_all(self->r, ka, 3), 0);
	espintcp_ike_fill(msg, sizeof(msg), 2);
	ASSERT_EQ(espintcp_write_frame(self->r, msg, sizeof(msg)), 0);
	ASSERT_EQ(espintcp_write_all(self->r, ka, 3), 0);
	ASSERT_EQ(write_ike(self->r, 8, 3), 0);

	EXPECT_TRUE(recv_ike(self->u, 40, 1));
	EXPECT_TRUE(recv_ike(self->u, 40, 2));
	EXPECT_TRUE(recv_ike(self->u, 8, 3));
	EXPECT_TRUE(nothing_to_recv(self->u));
	if (espintcp_have_stats())
		EXPECT_EQ(espintcp_stat("KeepaliveIn") - before, 4);
}

/* Bytes that arrived before the attach are parsed at attach. */
FIXTURE(pair)
{
	int u, r;
};

ESPINTCP_FAMILY_VARIANTS(pair);

FIXTURE_SETUP(pair)
{
	ASSERT_EQ(espintcp_test_netns(), 0);
	ASSERT_EQ(espintcp_test_pair(variant->family, &self->r, &self->u), 0);
	set_timeo(self->u, SO_RCVTIMEO, 10000);
}

FIXTURE_TEARDOWN(pair)
{
	close(self->u);
	close(self->r);
}

TEST_F(pair, before_attach)
{
	char pfx[6];
	size_t sizes[3] = { 30, 300, 3000 };

	/* The originator's prefix, read by the responder before it
	 * attaches, then frames that arrive before the attach.
	 */
	ASSERT_EQ(espintcp_write_all(self->r, "IKETCP", 6), 0);
	ASSERT_EQ(write_ike_frames(self->r, sizes, 3, 1), 0);
	ASSERT_EQ(espintcp_read_all(self->u, pfx, 6), 6);
	ASSERT_EQ(memcmp(pfx, "IKETCP", 6), 0);
	usleep(100000);
	ASSERT_EQ(espintcp_test_attach(self->u), 0);
	EXPECT_TRUE(recv_ike(self->u, 30, 1));
	EXPECT_TRUE(recv_ike(self->u, 300, 2));
	EXPECT_TRUE(recv_ike(self->u, 3000, 3));
}

/* Half a frame before the attach, the rest after. */
TEST_F(pair, split_across_attach)
{
	uint8_t frame[102], msg[100];

	espintcp_ike_fill(msg, sizeof(msg), 9);
	espintcp_frame(frame, msg, sizeof(msg));
	ASSERT_EQ(espintcp_write_all(self->r, frame, 40), 0);
	usleep(100000);
	ASSERT_EQ(espintcp_test_attach(self->u), 0);
	ASSERT_EQ(espintcp_write_all(self->r, frame + 40, 62), 0);
	EXPECT_TRUE(recv_ike(self->u, 100, 9));
}

/* libreswan's responder (ikev2-tcp-01-eof): the peer sends the prefix and
 * a stream that ends early, FIN included, before the attach; pluto then
 * polls and reads without blocking.  A frame cut short by the FIN reads
 * as the end of the stream: 0, never EAGAIN (pluto would read forever).
 */
static void junk_then_fin(struct __test_metadata *_metadata, int r, int u,
			  const char *junk, size_t len, bool settle)
{
	struct pollfd pfd = { .fd = u, .events = POLLIN };
	char pfx[6];

	ASSERT_EQ(espintcp_write_all(r, "IKETCP", 6), 0);
	ASSERT_EQ(espintcp_write_all(r, junk, len), 0);
	ASSERT_EQ(shutdown(r, SHUT_WR), 0);
	ASSERT_EQ(espintcp_read_all(u, pfx, 6), 6);
	if (settle)
		usleep(100000);
	ASSERT_EQ(espintcp_test_attach(u), 0);
	ASSERT_EQ(poll(&pfd, 1, 5000), 1);
}

TEST_F(pair, fin_inside_length_before_attach)
{
	char b[64];

	junk_then_fin(_metadata, self->r, self->u, "\0", 1, true);
	EXPECT_EQ(recv(self->u, b, sizeof(b), MSG_DONTWAIT), 0);
}

TEST_F(pair, fin_inside_frame_before_attach)
{
	char b[64];

	junk_then_fin(_metadata, self->r, self->u, "\0\xff\0\0", 4, true);
	EXPECT_EQ(recv(self->u, b, sizeof(b), MSG_DONTWAIT), 0);
}

/* A fatal length with the FIN behind it is an error, not an end of
 * stream; pluto logs it and closes.  RFC 9329's EPROTO here.  The reset
 * is scheduled by the parser, which runs from strparser's work: repeat,
 * so that a read that overtakes it would show.  (Upstream sets EINVAL
 * from that work and does not wait for it: pluto reads the end of the
 * stream there, in libreswan's own test case.)
 */
TEST_F(pair, bad_length_with_fin_before_attach)
{
	int i, fails = 0, eofs = 0;
	char b[64];

	UPSTREAM_BUG("the error can come after the end of the stream");
	for (i = 0; i < 100; i++) {
		if (i) {
			close(self->u);
			close(self->r);
			ASSERT_EQ(espintcp_test_pair(variant->family,
						     &self->r, &self->u), 0);
		}
		junk_then_fin(_metadata, self->r, self->u, "\0\0", 2,
			      i == 0);
		if (recv(self->u, b, sizeof(b), MSG_DONTWAIT) == 0) {
			eofs++;
			continue;
		}
		if (errno != EPROTO)
			fails++;
		else if (recv(self->u, b, sizeof(b), MSG_DONTWAIT) != 0)
			fails++;
	}
	EXPECT_EQ(eofs, 0);
	EXPECT_EQ(fails, 0);
}

/* MSG_PEEK leaves the message queued. */
TEST_F(raw, peek)
{
	uint8_t buf[256];

	ASSERT_EQ(write_ike(self->r, 50, 1), 0);
	ASSERT_EQ(write_ike(self->r, 60, 2), 0);
	ASSERT_EQ(recv(self->u, buf, sizeof(buf), MSG_PEEK), 50);
	EXPECT_TRUE(espintcp_ike_check(buf, 50, 1));
	ASSERT_EQ(recv(self->u, buf, sizeof(buf), MSG_PEEK), 50);
	EXPECT_TRUE(recv_ike(self->u, 50, 1));
	EXPECT_TRUE(recv_ike(self->u, 60, 2));
}

/* A short buffer gets the start of the message and MSG_TRUNC; the rest
 * of that message is gone.
 */
TEST_F(raw, short_buffer_truncates)
{
	uint8_t buf[16];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	ASSERT_EQ(write_ike(self->r, 100, 1), 0);
	ASSERT_EQ(write_ike(self->r, 20, 2), 0);
	ASSERT_EQ(recvmsg(self->u, &mh, 0), sizeof(buf));
	EXPECT_TRUE(mh.msg_flags & MSG_TRUNC);
	EXPECT_TRUE(espintcp_ike_check(buf, sizeof(buf), 1));
	EXPECT_TRUE(recv_ike(self->u, 20, 2));
}

/* The MSG_TRUNC flag returns the real length. */
TEST_F(raw, trunc_flag_returns_length)
{
	uint8_t buf[16];

	ASSERT_EQ(write_ike(self->r, 100, 1), 0);
	ASSERT_EQ(recv(self->u, buf, sizeof(buf), MSG_TRUNC), 100);
	EXPECT_TRUE(espintcp_ike_check(buf, sizeof(buf), 1));
	EXPECT_TRUE(nothing_to_recv(self->u));
}

/* Nothing queued: EAGAIN with MSG_DONTWAIT or O_NONBLOCK. */
TEST_F(raw, dontwait_empty)
{
	char b[8];

	ASSERT_EQ(recv(self->u, b, sizeof(b), MSG_DONTWAIT), -1);
	EXPECT_EQ(errno, EAGAIN);
	ASSERT_EQ(fcntl(self->u, F_SETFL, O_NONBLOCK), 0);
	ASSERT_EQ(recv(self->u, b, sizeof(b), 0), -1);
	EXPECT_EQ(errno, EAGAIN);
}

/* Half a frame does not make recv return. */
TEST_F(raw, partial_frame_not_delivered)
{
	uint8_t frame[102], msg[100];

	espintcp_ike_fill(msg, sizeof(msg), 4);
	espintcp_frame(frame, msg, sizeof(msg));
	ASSERT_EQ(espintcp_write_all(self->r, frame, 50), 0);
	usleep(100000);
	EXPECT_TRUE(nothing_to_recv(self->u));
	ASSERT_EQ(espintcp_write_all(self->r, frame + 50, 52), 0);
	EXPECT_TRUE(recv_ike(self->u, 100, 4));
}

/* SO_RCVTIMEO bounds a blocking recv. */
TEST_F(raw, rcvtimeo)
{
	long long t0;
	char b[8];

	set_timeo(self->u, SO_RCVTIMEO, 200);
	t0 = now_ms();
	ASSERT_EQ(recv(self->u, b, sizeof(b), 0), -1);
	EXPECT_EQ(errno, EAGAIN);
	EXPECT_GE(now_ms() - t0, 150);
}

/* A frame that takes longer than SO_RCVTIMEO to arrive is no error:
 * upstream's parser aborts the stream with ETIMEDOUT.
 */
TEST_F(raw, rcvtimeo_slow_frame)
{
	uint8_t frame[102], msg[100];

	DELIBERATE_DIFFERENCE("no assembly timeout on frames");
	set_timeo(self->u, SO_RCVTIMEO, 100);
	espintcp_ike_fill(msg, sizeof(msg), 5);
	espintcp_frame(frame, msg, sizeof(msg));
	ASSERT_EQ(espintcp_write_all(self->r, frame, 30), 0);
	usleep(400000);
	ASSERT_EQ(espintcp_write_all(self->r, frame + 30, 72), 0);
	set_timeo(self->u, SO_RCVTIMEO, 5000);
	EXPECT_TRUE(recv_ike(self->u, 100, 5));
}

struct delayed_write {
	int fd;
	int delay_ms;
	int what;	/* 0: IKE message, 1: shutdown(SHUT_WR), 2: RST */
};

static void *delayed_write_fn(void *arg)
{
	struct delayed_write *dw = arg;
	struct linger lin = { .l_onoff = 1, .l_linger = 0 };

	usleep(dw->delay_ms * 1000);
	switch (dw->what) {
	case 0:
		write_ike(dw->fd, 77, 77);
		break;
	case 1:
		shutdown(dw->fd, SHUT_WR);
		break;
	case 2:
		setsockopt(dw->fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
		close(dw->fd);
		break;
	}
	return NULL;
}

static pthread_t delayed(struct delayed_write *dw)
{
	pthread_t t;

	pthread_create(&t, NULL, delayed_write_fn, dw);
	return t;
}

/* A blocking recv waits for the message. */
TEST_F(raw, blocking_recv_wakes)
{
	struct delayed_write dw = { self->r, 200, 0 };
	pthread_t t = delayed(&dw);

	set_timeo(self->u, SO_RCVTIMEO, 10000);
	EXPECT_TRUE(recv_ike(self->u, 77, 77));
	pthread_join(t, NULL);
}

/* poll: not readable before data, readable with a message queued. */
TEST_F(raw, poll_readiness)
{
	struct pollfd pfd = { .fd = self->u, .events = POLLIN | POLLOUT };

	ASSERT_EQ(poll(&pfd, 1, 0), 1);
	EXPECT_FALSE(pfd.revents & POLLIN);
	EXPECT_TRUE(pfd.revents & POLLOUT);

	ASSERT_EQ(write_ike(self->r, 64, 1), 0);
	pfd.events = POLLIN;
	ASSERT_EQ(poll(&pfd, 1, 5000), 1);
	EXPECT_TRUE(pfd.revents & POLLIN);

	EXPECT_TRUE(recv_ike(self->u, 64, 1));
	ASSERT_EQ(poll(&pfd, 1, 0), 0);
}

/* Half a frame in TCP's queue does not make the socket readable. */
TEST_F(raw, poll_partial_frame)
{
	struct pollfd pfd = { .fd = self->u, .events = POLLIN };
	uint8_t frame[102], msg[100];

	espintcp_ike_fill(msg, sizeof(msg), 6);
	espintcp_frame(frame, msg, sizeof(msg));
	ASSERT_EQ(espintcp_write_all(self->r, frame, 50), 0);
	EXPECT_EQ(poll(&pfd, 1, 200), 0);
	ASSERT_EQ(espintcp_write_all(self->r, frame + 50, 52), 0);
	EXPECT_EQ(poll(&pfd, 1, 5000), 1);
	EXPECT_TRUE(recv_ike(self->u, 100, 6));
}

/* Bytes of an unfinished frame that arrive after strparser has taken
 * the frame's head still sit in TCP's receive queue: they do not make
 * the socket readable either (upstream's poll looked at that queue until
 * "espintcp: use datagram_poll_queue for socket readiness").
 */
TEST_F(raw, poll_partial_frame_tail)
{
	struct pollfd pfd = { .fd = self->u, .events = POLLIN };
	uint8_t frame[102], msg[100], b[128];

	espintcp_ike_fill(msg, sizeof(msg), 7);
	espintcp_frame(frame, msg, sizeof(msg));
	ASSERT_EQ(espintcp_write_all(self->r, frame, 50), 0);
	usleep(100000);
	ASSERT_EQ(espintcp_write_all(self->r, frame + 50, 20), 0);
	EXPECT_EQ(poll(&pfd, 1, 200), 0);
	EXPECT_EQ(recv(self->u, b, sizeof(b), MSG_DONTWAIT), -1);
	EXPECT_EQ(errno, EAGAIN);
	ASSERT_EQ(espintcp_write_all(self->r, frame + 70, 32), 0);
	EXPECT_EQ(poll(&pfd, 1, 5000), 1);
	EXPECT_TRUE(recv_ike(self->u, 100, 7));
}

TEST_F(raw, epoll_readiness)
{
	struct epoll_event ev = { .events = EPOLLIN }, out;
	int ep = epoll_create1(0);

	ASSERT_GE(ep, 0);
	ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, self->u, &ev), 0);
	EXPECT_EQ(epoll_wait(ep, &out, 1, 0), 0);
	ASSERT_EQ(write_ike(self->r, 64, 1), 0);
	ASSERT_EQ(epoll_wait(ep, &out, 1, 5000), 1);
	EXPECT_TRUE(out.events & EPOLLIN);
	EXPECT_TRUE(recv_ike(self->u, 64, 1));
	EXPECT_EQ(epoll_wait(ep, &out, 1, 0), 0);
	close(ep);
}

/* ESP with an SPI that has no SA reaches XFRM (XfrmInNoStates counts
 * each one) and is never delivered to user space.
 */
TEST_F(raw, esp_reaches_xfrm)
{
	long long before = xfrm_stat("XfrmInNoStates");
	int i;

	ASSERT_GE(before, 0) TH_LOG("no /proc/net/xfrm_stat");
	for (i = 0; i < 25; i++)
		ASSERT_EQ(write_esp(self->r, 40 + i * 13, 0x1000 + i, i + 1), 0);
	/* An IKE message behind them: once it is here, they were parsed. */
	ASSERT_EQ(write_ike(self->r, 20, 1), 0);
	EXPECT_TRUE(recv_ike(self->u, 20, 1));
	EXPECT_EQ(xfrm_stat("XfrmInNoStates") - before, 25);
	EXPECT_TRUE(nothing_to_recv(self->u));
	if (espintcp_have_stats())
		EXPECT_EQ(espintcp_stat("EspInFrames"), 25);
}

/* ESP and IKE interleaved; the largest ESP frame there is. */
TEST_F(raw, esp_ike_interleaved)
{
	long long before = xfrm_stat("XfrmInNoStates");

	ASSERT_EQ(write_esp(self->r, 100, 0xabcdef01, 1), 0);
	ASSERT_EQ(write_ike(self->r, 30, 1), 0);
	ASSERT_EQ(write_esp(self->r, ESPINTCP_MAX_PAYLOAD, 0xabcdef01, 2), 0);
	ASSERT_EQ(write_ike(self->r, 31, 2), 0);
	EXPECT_TRUE(recv_ike(self->u, 30, 1));
	EXPECT_TRUE(recv_ike(self->u, 31, 2));
	EXPECT_EQ(xfrm_stat("XfrmInNoStates") - before, 2);
}

/* Frames too short for a marker and a message, or for an ESP header,
 * are dropped and counted as header errors; the stream stays in sync.
 */
TEST_F(raw, short_frames_dropped)
{
	static const struct { size_t len; uint8_t b[7]; } f[] = {
		{ 1, { 0x00 } }, { 1, { 0x01 } }, { 1, { 0xfe } },
		{ 2, { 0xff, 0xff } }, { 3, { 0, 0, 0 } }, { 4, { 0, 0, 0, 0 } },
		{ 4, { 1, 2, 3, 4 } }, { 5, { 1, 2, 3, 4, 5 } },
		{ 6, { 0, 0, 0, 1, 5, 6 } }, { 7, { 9, 9, 9, 9, 9, 9, 9 } },
	};
	long long before = xfrm_stat("XfrmInHdrError");
	long long nostates = xfrm_stat("XfrmInNoStates");
	size_t i, n = sizeof(f) / sizeof(f[0]);

	ASSERT_GE(before, 0);
	for (i = 0; i < n; i++)
		ASSERT_EQ(espintcp_write_frame(self->r, f[i].b, f[i].len), 0);
	ASSERT_EQ(write_ike(self->r, 5, 1), 0);
	EXPECT_TRUE(recv_ike(self->u, 5, 1));
	EXPECT_TRUE(nothing_to_recv(self->u));
	EXPECT_EQ(xfrm_stat("XfrmInHdrError") - before, n);
	EXPECT_EQ(xfrm_stat("XfrmInNoStates") - nostates, 0);
	if (espintcp_have_stats())
		EXPECT_EQ(espintcp_stat("DropShort"), n);
}

/* An empty message (length 2) is skipped. */
TEST_F(raw, empty_message_skipped)
{
	static const uint8_t empty[2] = { 0, 2 };

	ASSERT_EQ(espintcp_write_all(self->r, empty, 2), 0);
	ASSERT_EQ(write_ike(self->r, 12, 1), 0);
	ASSERT_EQ(espintcp_write_all(self->r, empty, 2), 0);
	ASSERT_EQ(espintcp_write_all(self->r, empty, 2), 0);
	ASSERT_EQ(write_ike(self->r, 13, 2), 0);
	EXPECT_TRUE(recv_ike(self->u, 12, 1));
	EXPECT_TRUE(recv_ike(self->u, 13, 2));
	EXPECT_TRUE(nothing_to_recv(self->u));
}

/* RFC 9329 section 3: ignored silently, so no header error either. */
TEST_F(raw, empty_message_not_an_error)
{
	static const uint8_t empty[2] = { 0, 2 };
	long long before = xfrm_stat("XfrmInHdrError");

	DELIBERATE_DIFFERENCE("RFC 9329: empty messages are no error");
	ASSERT_EQ(espintcp_write_all(self->r, empty, 2), 0);
	ASSERT_EQ(write_ike(self->r, 12, 1), 0);
	EXPECT_TRUE(recv_ike(self->u, 12, 1));
	EXPECT_EQ(xfrm_stat("XfrmInHdrError") - before, 0);
	if (espintcp_have_stats())
		EXPECT_EQ(espintcp_stat("EmptyIn"), 1);
}

/* RFC 9329 section 3: a length of 0 or 1 is fatal.  The reader learns
 * EPROTO, the connection is reset, then recv reads end of stream.
 */
static void bad_length(struct __test_metadata *_metadata, int u, int r,
		       uint8_t len)
{
	uint8_t bad[2] = { 0, len };
	struct pollfd pfd = { .fd = u, .events = POLLIN };
	char b[64];
	int i;

	ASSERT_EQ(write_ike(r, 10, 1), 0);
	EXPECT_TRUE(recv_ike(u, 10, 1));
	ASSERT_EQ(espintcp_write_all(r, bad, 2), 0);

	/* tcp_abort() reports the error before it closes the socket: a
	 * poll may wake in between (seen under the debug kernel).
	 */
	for (i = 0; i < 50; i++) {
		ASSERT_EQ(poll(&pfd, 1, 5000), 1);
		if (pfd.revents & POLLHUP)
			break;
		usleep(100 * 1000);
	}
	EXPECT_TRUE(pfd.revents & POLLERR);
	EXPECT_TRUE(pfd.revents & POLLHUP);
	set_timeo(u, SO_RCVTIMEO, 5000);
	ASSERT_EQ(recv(u, b, sizeof(b), 0), -1);
	EXPECT_EQ(errno, EPROTO);
	EXPECT_EQ(recv(u, b, sizeof(b), 0), 0);

	/* The peer got a reset. */
	set_timeo(r, SO_RCVTIMEO, 5000);
	EXPECT_EQ(read(r, b, sizeof(b)), -1);
	EXPECT_EQ(errno, ECONNRESET);
	if (espintcp_have_stats())
		EXPECT_EQ(espintcp_stat("BadLengthReset"), 1);
}

TEST_F(raw, length_0_resets)
{
	DELIBERATE_DIFFERENCE("RFC 9329: length 0 resets the connection");
	bad_length(_metadata, self->u, self->r, 0);
}

TEST_F(raw, length_1_resets)
{
	DELIBERATE_DIFFERENCE("RFC 9329: length 1 resets the connection");
	bad_length(_metadata, self->u, self->r, 1);
}

/* A fatal length behind a whole frame in the same segment: counted once
 * (TCP offers the rest of the segment again after the parser stopped).
 */
TEST_F(raw, fatal_length_counted_once)
{
	static const uint8_t stream[] = { 0, 3, 0xff, 0, 0 };
	struct pollfd pfd = { .fd = self->u, .events = POLLIN };
	long long before = xfrm_stat("XfrmInHdrError");

	DELIBERATE_DIFFERENCE("RFC 9329: length 0 resets the connection");
	ASSERT_EQ(espintcp_write_all(self->r, stream, sizeof(stream)), 0);
	ASSERT_EQ(poll(&pfd, 1, 5000), 1);
	EXPECT_TRUE(pfd.revents & POLLERR);
	EXPECT_EQ(xfrm_stat("XfrmInHdrError") - before, 1);
	if (espintcp_have_stats()) {
		EXPECT_EQ(espintcp_stat("KeepaliveIn"), 1);
		EXPECT_EQ(espintcp_stat("BadLengthReset"), 1);
	}
}

/* A counter of /proc/net/netstat ("TcpExt: NAME ..." then values). */
static long long tcpext_stat(const char *name)
{
	char names[4096], values[4096], *n, *v, *sn, *sv;
	long long ret = -1;
	FILE *f = fopen("/proc/net/netstat", "r");

	if (!f)
		return -1;
	while (fgets(names, sizeof(names), f) &&
	       fgets(values, sizeof(values), f)) {
		if (strncmp(names, "TcpExt:", 7))
			continue;
		n = strtok_r(names, " \n", &sn);
		v = strtok_r(values, " \n", &sv);
		while (n && v) {
			if (!strcmp(n, name))
				ret = atoll(v);
			n = strtok_r(NULL, " \n", &sn);
			v = strtok_r(NULL, " \n", &sv);
		}
	}
	fclose(f);
	return ret;
}

/* While a long frame is incomplete, strparser leaves new segments in
 * TCP's receive queue; over the receive buffer, TCP collapses them into
 * new skbs that keep no device and no protocol.  A frame that starts in
 * one must still reach XFRM.
 */
TEST_F(raw, esp_in_collapsed_segments)
{
	static uint8_t buf[8000];
	size_t len = 0, off;
	long long nostates = xfrm_stat("XfrmInNoStates");
	long long collapsed = tcpext_stat("TCPRcvCollapsed");
	uint8_t esp[6000];
	int sz = 4096, i;

	/* A small buffer that still takes the whole long frame once TCP
	 * has collapsed its segments, else the stream would stall.
	 */
	setsockopt(self->u, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	espintcp_esp_fill(esp, 5000, 0x4242, 1);
	len += espintcp_frame(buf + len, esp, 5000);
	for (i = 0; i < 5; i++) {
		espintcp_esp_fill(esp, 40, 0x4242, i + 2);
		len += espintcp_frame(buf + len, esp, 40);
	}
	/* The long frame's start, then the rest in small segments. */
	ASSERT_EQ(espintcp_write_all(self->r, buf, 20), 0);
	usleep(100000);
	for (off = 20; off < len; off += 20)
		ASSERT_EQ(espintcp_write_all(self->r, buf + off,
					     len - off < 20 ? len - off : 20), 0);
	for (i = 0; i < 500 && xfrm_stat("XfrmInNoStates") - nostates < 6; i++)
		usleep(10000);
	TH_LOG("TCPRcvCollapsed +%lld",
	       tcpext_stat("TCPRcvCollapsed") - collapsed);
	EXPECT_EQ(xfrm_stat("XfrmInNoStates") - nostates, 6);
	if (espintcp_have_stats())
		EXPECT_EQ(espintcp_stat("DropNoDevice"), 0);
	/* Or the test tests nothing. */
	EXPECT_GT(tcpext_stat("TCPRcvCollapsed") - collapsed, 0);
}

/* MSG_OOB has no meaning here, MSG_ERRQUEUE reads the (empty) error
 * queue: neither takes the IKE message waiting.
 */
TEST_F(raw, oob_and_errqueue_leave_ike)
{
	char b[64];

	DELIBERATE_DIFFERENCE("MSG_OOB and MSG_ERRQUEUE are not IKE reads");
	ASSERT_EQ(write_ike(self->r, 20, 3), 0);
	usleep(200000);
	EXPECT_EQ(recv(self->u, b, sizeof(b), MSG_OOB | MSG_DONTWAIT), -1);
	EXPECT_EQ(errno, EOPNOTSUPP);
	EXPECT_EQ(recv(self->u, b, sizeof(b), MSG_ERRQUEUE | MSG_DONTWAIT), -1);
	EXPECT_EQ(errno, EAGAIN);
	EXPECT_TRUE(recv_ike(self->u, 20, 3));
}

/* The selftests' probe module (selftests/modules/espintcp_test_probe.c):
 * loaded if it is not; false if it cannot be.
 */
static bool load_probe(void)
{
	char cmd[256];
	struct utsname u;

	if (!access("/sys/module/espintcp_test_probe", F_OK))
		return true;
	if (uname(&u))
		return false;
	snprintf(cmd, sizeof(cmd),
		 "insmod ../build/%s/selftests/modules/espintcp_test_probe.ko",
		 u.release);
	return system(cmd) == 0;
}

static long probe_param(const char *name)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/module/espintcp_test_probe/parameters/%s", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int set_probe_param(const char *name, long v)
{
	char path[128];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path),
		 "/sys/module/espintcp_test_probe/parameters/%s", name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	ret = fprintf(f, "%ld\n", v) < 0;
	return fclose(f) || ret ? -1 : 0;
}

/* strparser fails to clone the segment (an atomic allocation): the
 * message must still arrive, from strparser's retry, without the peer
 * sending anything more (IKE over TCP is not retransmitted).
 */
TEST_F(raw, parser_nomem_retried)
{
	DELIBERATE_DIFFERENCE("an allocation failure in the parser is retried");
	if (!load_probe())
		SKIP(return, "cannot load espintcp_test_probe.ko");
	ASSERT_EQ(set_probe_param("fail_strp_clones", 1), 0);
	ASSERT_EQ(write_ike(self->r, 100, 1), 0);
	set_timeo(self->u, SO_RCVTIMEO, 3000);
	EXPECT_TRUE(recv_ike(self->u, 100, 1));
	/* The failure did happen. */
	EXPECT_EQ(probe_param("fail_strp_clones"), 0);
	set_probe_param("fail_strp_clones", 0);
}

/* Close with IKE messages queued and a frame half received. */
TEST_F(raw, close_with_queued)
{
	uint8_t frame[1002], msg[1000], b[8];
	int i;

	for (i = 0; i < 20; i++)
		ASSERT_EQ(write_ike(self->r, 200, i), 0);
	espintcp_ike_fill(msg, sizeof(msg), 99);
	espintcp_frame(frame, msg, sizeof(msg));
	ASSERT_EQ(espintcp_write_all(self->r, frame, 500), 0);
	EXPECT_TRUE(recv_ike(self->u, 200, 0));
	usleep(50000);
	close(self->u);
	self->u = socket(AF_INET, SOCK_STREAM, 0);
	/* The peer sees the connection end (FIN, or RST for unread data). */
	set_timeo(self->r, SO_RCVTIMEO, 5000);
	EXPECT_LE(read(self->r, b, sizeof(b)), 0);
}

/* The peer resets: recv reports ECONNRESET once, then end of stream. */
TEST_F(raw, peer_reset)
{
	struct linger lin = { .l_onoff = 1, .l_linger = 0 };
	char b[64];

	ASSERT_EQ(setsockopt(self->r, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
	close(self->r);
	self->r = socket(AF_INET, SOCK_STREAM, 0);
	set_timeo(self->u, SO_RCVTIMEO, 5000);
	ASSERT_EQ(recv(self->u, b, sizeof(b), 0), -1);
	EXPECT_EQ(errno, ECONNRESET);
	EXPECT_EQ(recv(self->u, b, sizeof(b), 0), 0);
}

/* A reader blocked in recv when the reset comes is woken. */
TEST_F(raw, peer_reset_wakes_reader)
{
	struct delayed_write dw = { self->r, 200, 2 };
	pthread_t t = delayed(&dw);
	char b[64];

	set_timeo(self->u, SO_RCVTIMEO, 10000);
	ASSERT_EQ(recv(self->u, b, sizeof(b), 0), -1);
	EXPECT_EQ(errno, ECONNRESET);
	pthread_join(t, NULL);
	self->r = socket(AF_INET, SOCK_STREAM, 0);
}

/* After the peer's FIN: queued messages, then 0 (libreswan reads 0 as
 * end of stream), again and again.
 */
TEST_F(raw, eof_after_messages)
{
	char b[64];

	ASSERT_EQ(write_ike(self->r, 10, 1), 0);
	ASSERT_EQ(write_ike(self->r, 11, 2), 0);
	ASSERT_EQ(shutdown(self->r, SHUT_WR), 0);
	EXPECT_TRUE(recv_ike(self->u, 10, 1));
	EXPECT_TRUE(recv_ike(self->u, 11, 2));
	EXPECT_EQ(recv(self->u, b, sizeof(b), 0), 0);
	EXPECT_EQ(recv(self->u, b, sizeof(b), MSG_DONTWAIT), 0);
}

/* A reader blocked in recv when the FIN comes gets 0. */
TEST_F(raw, eof_wakes_reader)
{
	struct delayed_write dw = { self->r, 200, 1 };
	pthread_t t = delayed(&dw);
	char b[64];

	set_timeo(self->u, SO_RCVTIMEO, 10000);
	EXPECT_EQ(recv(self->u, b, sizeof(b), 0), 0);
	pthread_join(t, NULL);
}

/* After shutting down our own sending side we still receive; upstream
 * reads end of stream there as soon as its queue is empty.
 */
TEST_F(raw, recv_after_own_shutdown)
{
	struct delayed_write dw = { self->r, 200, 0 };
	pthread_t t;

	DELIBERATE_DIFFERENCE("recv waits in FIN_WAIT states");
	ASSERT_EQ(shutdown(self->u, SHUT_WR), 0);
	t = delayed(&dw);
	set_timeo(self->u, SO_RCVTIMEO, 10000);
	EXPECT_TRUE(recv_ike(self->u, 77, 77));
	pthread_join(t, NULL);
}

/* Check that @r holds exactly @n frames of @len bytes, seq from 0. */
static void read_frames(struct __test_metadata *_metadata, int r, int n,
			size_t len)
{
	static uint8_t buf[ESPINTCP_MAX_PAYLOAD + 2];
	int i;

	for (i = 0; i < n; i++) {
		ASSERT_EQ(espintcp_read_all(r, buf, 2), 2);
		ASSERT_EQ((size_t)(buf[0] << 8 | buf[1]), len + 2) TH_LOG("frame %d", i);
		ASSERT_EQ(espintcp_read_all(r, buf, len), len);
		ASSERT_TRUE(espintcp_ike_check(buf, len, i)) TH_LOG("frame %d", i);
	}
	EXPECT_TRUE(nothing_to_recv(r));
}

/* Non-blocking sends into a peer that does not read: EAGAIN once TCP is
 * full, and every frame that was accepted arrives whole.
 */
TEST_F(raw, send_nonblocking_full)
{
	static uint8_t msg[16000];
	int n;

	for (n = 0; n < 10000; n++) {
		espintcp_ike_fill(msg, sizeof(msg), n);
		if (send(self->u, msg, sizeof(msg), MSG_DONTWAIT) < 0)
			break;
	}
	ASSERT_LT(n, 10000);
	ASSERT_EQ(errno, EAGAIN);
	TH_LOG("%d frames accepted before EAGAIN", n);
	read_frames(_metadata, self->r, n, sizeof(msg));
}

/* SO_SNDTIMEO bounds a blocking send into a full stream: EAGAIN, as for
 * TCP; upstream returns ENOBUFS with part of a frame still pending.
 */
TEST_F(raw, send_sndtimeo)
{
	static uint8_t msg[16000];
	int n;

	DELIBERATE_DIFFERENCE("SO_SNDTIMEO expiry is EAGAIN");
	set_timeo(self->u, SO_SNDTIMEO, 200);
	for (n = 0; n < 10000; n++) {
		espintcp_ike_fill(msg, sizeof(msg), n);
		if (send(self->u, msg, sizeof(msg), 0) < 0)
			break;
	}
	ASSERT_LT(n, 10000);
	ASSERT_EQ(errno, EAGAIN);
	read_frames(_metadata, self->r, n, sizeof(msg));
}

struct drain {
	int fd, n;
	size_t len;
	int ok;
};

static void *drain_fn(void *arg)
{
	static uint8_t buf[ESPINTCP_MAX_PAYLOAD + 2];
	struct drain *d = arg;
	int i;

	for (i = 0; i < d->n; i++) {
		if (espintcp_read_all(d->fd, buf, d->len + 2) != d->len + 2 ||
		    (size_t)(buf[0] << 8 | buf[1]) != d->len + 2 ||
		    !espintcp_ike_check(buf + 2, d->len, i))
			return NULL;
	}
	d->ok = 1;
	return NULL;
}

/* Blocking sends of large messages go out whole while the peer reads. */
TEST_F(raw, send_blocking_large)
{
	static uint8_t msg[ESPINTCP_MAX_PAYLOAD];
	struct drain d = { self->r, 100, sizeof(msg), 0 };
	pthread_t t;
	int i;

	pthread_create(&t, NULL, drain_fn, &d);
	for (i = 0; i < 100; i++) {
		espintcp_ike_fill(msg, sizeof(msg), i);
		ASSERT_EQ(send(self->u, msg, sizeof(msg), 0), sizeof(msg));
	}
	pthread_join(t, NULL);
	EXPECT_TRUE(d.ok);
}

/* Sending on a connection the peer reset fails; upstream reports the
 * message as sent.
 */
TEST_F(raw, send_after_reset)
{
	struct linger lin = { .l_onoff = 1, .l_linger = 0 };
	uint8_t msg[32] = { 0 };
	char b[8];

	DELIBERATE_DIFFERENCE("send on a reset connection fails");
	ASSERT_EQ(setsockopt(self->r, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
	close(self->r);
	self->r = socket(AF_INET, SOCK_STREAM, 0);
	set_timeo(self->u, SO_RCVTIMEO, 5000);
	recv(self->u, b, sizeof(b), 0);	/* wait for the reset */
	ASSERT_EQ(send(self->u, msg, sizeof(msg), 0), -1);
	EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET);
}

/* The peer resets the connection while a frame is half sent (TCP took
 * part of it, the rest is pending): the next send fails at once with
 * the reset instead of waiting or reusing the half-sent frame, and
 * close frees the pending frame (a leak would keep the socket, and so
 * the test's namespace, alive).  Upstream's partial-send bookkeeping
 * had several bugs here (sk_msg accounting, CVE-2026-52935).
 */
TEST_F(raw, reset_with_partial_frame)
{
	struct linger lin = { .l_onoff = 1, .l_linger = 0 };
	static uint8_t msg[ESPINTCP_MAX_PAYLOAD];
	int i, k, u, r, small = 4096;

	DELIBERATE_DIFFERENCE("send on a reset connection fails");
	for (i = 0; i < 20; i++) {
		ASSERT_EQ(espintcp_veth_pair(&self->veth, variant->family, &u, &r), 0);
		ASSERT_EQ(setsockopt(r, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
		ASSERT_EQ(espintcp_test_attach(u), 0);
		for (k = 0; k < 200; k++)
			if (send(u, msg, sizeof(msg), MSG_DONTWAIT) < 0)
				break;
		ASSERT_EQ(errno, EAGAIN);
		ASSERT_EQ(setsockopt(r, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
		close(r);
		set_timeo(u, SO_SNDTIMEO, 5000);
		for (k = 0; k < 50; k++) {
			if (send(u, msg, 64, 0) < 0)
				break;
			usleep(20000);
		}
		EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET)
			TH_LOG("iteration %d: send after %d tries: errno %d", i, k, errno);
		close(u);
	}
}

/* The IKE queue is bounded by the receive buffer, as upstream bounds it;
 * what does not fit is dropped and counted (XfrmInError), never lost
 * silently.
 */
TEST_F(raw, ike_queue_bounded)
{
	long long before = xfrm_stat("XfrmInError"), dropped = 0;
	size_t sizes[50];
	int i, got = 0, rcvbuf = 4096;
	uint8_t buf[2048];

	UPSTREAM_BUG("forward_alloc left charged at destroy (WARN)");
	ASSERT_EQ(setsockopt(self->u, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			     sizeof(rcvbuf)), 0);
	for (i = 0; i < 50; i++)
		sizes[i] = 1000;
	ASSERT_EQ(write_ike_frames(self->r, sizes, 50, 0), 0);
	for (i = 0; i < 500 && got + dropped < 50; i++) {
		while (recv(self->u, buf, sizeof(buf), MSG_DONTWAIT) == 1000)
			got++;
		dropped = xfrm_stat("XfrmInError") - before;
		usleep(10000);
	}
	TH_LOG("%d delivered, %lld dropped", got, dropped);
	EXPECT_EQ(got + dropped, 50);
	EXPECT_GT(dropped, 0);
	if (espintcp_have_stats())
		EXPECT_EQ(espintcp_stat("DropIkeQueueFull"), dropped);
}

/* Random frames of every kind: each is accounted for exactly once, the
 * IKE ones arrive intact and in order.
 */
TEST_F(raw, junk_frames_accounted)
{
	long long nostates = xfrm_stat("XfrmInNoStates");
	long long hdrerr = xfrm_stat("XfrmInHdrError");
	int n_ike = 0, n_esp = 0, n_short = 0, n_ka = 0, i, got;
	static uint8_t stream[1 << 20], buf[2048];
	size_t off = 0, len;
	uint8_t msg[600];
	uint32_t rnd = 12345;

	big_rcvbuf(self->u);
	for (i = 0; i < 3000; i++) {
		rnd = rnd * 1103515245 + 12345;
		len = 1 + (rnd >> 8) % 400;
		switch ((rnd >> 20) % 4) {
		case 0:		/* IKE */
			len += 4;
			espintcp_ike_fill(msg, len, n_ike++);
			break;
		case 1:		/* ESP, SPI never 0 */
			len += 8;
			espintcp_esp_fill(msg, len, 0x100 + (rnd >> 24), i);
			n_esp++;
			break;
		case 2:		/* keep-alive */
			len = 1;
			msg[0] = 0xff;
			n_ka++;
			break;
		default:	/* too short to be anything */
			len = 1 + (rnd >> 8) % 4;
			memset(msg, (rnd >> 12) & 1 ? 0 : 0x11, len);
			n_short++;
			break;
		}
		off += espintcp_frame(stream + off, msg, len);
	}
	ASSERT_EQ(espintcp_write_all(self->r, stream, off), 0);
	for (got = 0; got < n_ike; got++) {
		ssize_t n = recv(self->u, buf, sizeof(buf), 0);

		ASSERT_GT(n, 4) TH_LOG("message %d", got);
		ASSERT_TRUE(espintcp_ike_check(buf, n, got)) TH_LOG("message %d", got);
	}
	EXPECT_TRUE(nothing_to_recv(self->u));
	EXPECT_EQ(xfrm_stat("XfrmInNoStates") - nostates, n_esp);
	EXPECT_EQ(xfrm_stat("XfrmInHdrError") - hdrerr, n_short);
	if (espintcp_have_stats()) {
		EXPECT_EQ(espintcp_stat("KeepaliveIn"), n_ka);
		EXPECT_EQ(espintcp_stat("EspInFrames"), n_esp);
		EXPECT_EQ(espintcp_stat("DropShort"), n_short);
	}
}

/* A megabyte of noise: whatever the lengths say, nothing crashes and
 * the socket reports messages, an error or the end of the stream.
 */
TEST_F(raw, junk_stream)
{
	static uint8_t junk[1 << 20], buf[RECV_BUF];
	uint32_t rnd = 777;
	size_t i;
	ssize_t n;

	for (i = 0; i < sizeof(junk); i++) {
		rnd = rnd * 1103515245 + 12345;
		junk[i] = rnd >> 16;
	}
	/* The peer may reset us part way: that is a fine outcome. */
	signal(SIGPIPE, SIG_IGN);
	espintcp_write_all(self->r, junk, sizeof(junk));
	shutdown(self->r, SHUT_WR);
	set_timeo(self->u, SO_RCVTIMEO, 5000);
	do
		n = recv(self->u, buf, sizeof(buf), 0);
	while (n > 0);
	EXPECT_TRUE(n == 0 || errno == EPROTO || errno == ECONNRESET ||
		    errno == EAGAIN) TH_LOG("errno %d", errno);
}

static void *sink_fn(void *arg)
{
	static uint8_t sink[1 << 16];
	int fd = *(int *)arg;

	while (recv(fd, sink, sizeof(sink), 0) > 0)
		;
	return NULL;
}

/* Close while the peer keeps reading: its window updates reach TCP in
 * softirq, which calls write_space (and so schedules the work that
 * pushes a pending frame) while the close runs, on another CPU.  The
 * close must wait out such a softirq before it cancels the work and
 * frees the context (upstream's CVE-2026-23239); a work item queued on
 * freed memory shows as a crash or list corruption, which fails the run.
 */
TEST_F(raw, close_races_tx_work)
{
	static uint8_t msg[ESPINTCP_MAX_PAYLOAD];
	int i, k;

	for (i = 0; i < 100; i++) {
		pthread_t t;
		int u, r;

		ASSERT_EQ(espintcp_veth_pair(&self->veth, variant->family, &u, &r), 0);
		ASSERT_EQ(espintcp_test_attach(u), 0);
		for (k = 0; k < 200; k++)
			if (send(u, msg, sizeof(msg), MSG_DONTWAIT) < 0)
				break;
		ASSERT_EQ(errno, EAGAIN);
		pthread_create(&t, NULL, sink_fn, &r);
		/* Let the reader start making window updates. */
		usleep(i % 10 * 100);
		close(u);
		pthread_join(t, NULL);
		close(r);
	}
}

struct concurrent {
	int fd, id, sent, err;
};

static void *concurrent_fn(void *arg)
{
	static uint8_t msgs[4][9000];
	struct concurrent *c = arg;
	int i;

	for (i = 0; i < 200; i++) {
		size_t len = 2000 + c->id * 1700 + i % 7;

		espintcp_ike_fill(msgs[c->id], len, c->id);
		if (send(c->fd, msgs[c->id], len, 0) != (ssize_t)len) {
			c->err = errno;
			break;
		}
		c->sent++;
	}
	return NULL;
}

/* Four threads send at once.  Every frame that send accepted leaves
 * whole, never spliced into another (one pending frame per socket,
 * shared by all writers); the count per sender matches.  Returns the
 * number of sends that failed.
 */
static int concurrent_senders(struct __test_metadata *_metadata, int u, int r)
{
	static uint8_t buf[ESPINTCP_MAX_PAYLOAD];
	struct concurrent c[4];
	int i, failed = 0, seen[4] = { 0 };
	pthread_t t[4];

	for (i = 0; i < 4; i++) {
		c[i] = (struct concurrent){ u, i, 0, 0 };
		pthread_create(&t[i], NULL, concurrent_fn, &c[i]);
	}
	/* Read until the senders are done and the stream is drained. */
	set_timeo(r, SO_RCVTIMEO, 2000);
	for (i = 0; ; i++) {
		size_t len;
		int id;

		if (espintcp_read_all(r, buf, 2) != 2)
			break;
		len = (buf[0] << 8 | buf[1]) - 2;
		ASSERT_EQ(espintcp_read_all(r, buf, len), len);
		id = (len - 2000) / 1700;
		ASSERT_TRUE(id >= 0 && id < 4) TH_LOG("frame %d: length %zu", i, len);
		ASSERT_TRUE(espintcp_ike_check(buf, len, id)) TH_LOG("frame %d", i);
		seen[id]++;
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(seen[i], c[i].sent) TH_LOG("sender %d", i);
		if (c[i].sent < 200) {
			TH_LOG("sender %d: %d sent, then errno %d", i, c[i].sent,
			       c[i].err);
			failed++;
		}
	}
	return failed;
}

TEST_F(raw, concurrent_senders_whole_frames)
{
	concurrent_senders(_metadata, self->u, self->r);
}

/* ...and none of them fails: a blocking send waits for another writer's
 * pending frame, where upstream returns ENOBUFS.
 */
TEST_F(raw, concurrent_senders_all_sent)
{
	DELIBERATE_DIFFERENCE("blocking send waits for a pending frame");
	EXPECT_EQ(concurrent_senders(_metadata, self->u, self->r), 0);
}

/* ESP that waited in TCP's queue while its ingress device went away is
 * dropped and counted when the ULP parses it (upstream dereferenced the
 * missing device until "xfrm: drop ESP-in-TCP packets with no ingress
 * device").
 */
static void ingress_device_gone(struct __test_metadata *_metadata, int family)
{
	struct espintcp_veth v;
	long long before, nodev = 0;
	int u, r, i;
	char cmd[128];

	load_esp();
	ASSERT_EQ(espintcp_veth_setup(&v), 0);
	ASSERT_EQ(espintcp_veth_pair(&v, family, &u, &r), 0);
	for (i = 0; i < 5; i++)
		ASSERT_EQ(write_esp(r, 64, 0x4242, i + 1), 0);
	usleep(200000);
	snprintf(cmd, sizeof(cmd), "ip -n %s link del veth0", v.a);
	ASSERT_EQ(system(cmd), 0);
	before = xfrm_stat("XfrmInError");
	if (espintcp_have_stats())
		nodev = espintcp_stat("DropNoDevice");
	ASSERT_EQ(espintcp_test_attach(u), 0);
	for (i = 0; i < 100 && xfrm_stat("XfrmInError") - before < 5; i++)
		usleep(10000);
	EXPECT_EQ(xfrm_stat("XfrmInError") - before, 5);
	if (espintcp_have_stats())
		EXPECT_EQ(espintcp_stat("DropNoDevice") - nodev, 5);
	close(u);
	close(r);
	espintcp_veth_teardown(&v);
}

TEST(esp_ingress_device_gone)
{
	ingress_device_gone(_metadata, AF_INET);
}

TEST(esp_ingress_device_gone_ipv6)
{
	ingress_device_gone(_metadata, AF_INET6);
}

/* sendfile and splice would move raw bytes around the framing: refused
 * both ways.  Upstream lets them through.
 */
TEST_F(raw, splice_refused)
{
	char path[] = "/tmp/espintcp-splice-XXXXXX";
	uint8_t data[4096] = { 0 };
	int fd, p[2];
	off_t off = 0;

	DELIBERATE_DIFFERENCE("sendfile and splice are refused");
	fd = mkstemp(path);
	ASSERT_GE(fd, 0);
	unlink(path);
	ASSERT_EQ(write(fd, data, sizeof(data)), sizeof(data));
	ASSERT_EQ(sendfile(self->u, fd, &off, sizeof(data)), -1);
	EXPECT_EQ(errno, EOPNOTSUPP);
	ASSERT_EQ(pipe(p), 0);
	ASSERT_EQ(write_ike(self->r, 100, 1), 0);
	usleep(100000);
	ASSERT_EQ(splice(self->u, NULL, p[1], NULL, 4096, SPLICE_F_NONBLOCK), -1);
	EXPECT_EQ(errno, EOPNOTSUPP);
	ASSERT_EQ(write(p[1], data, 64), 64);
	ASSERT_EQ(splice(p[0], NULL, self->u, NULL, 64, 0), -1);
	EXPECT_EQ(errno, EOPNOTSUPP);
	/* The stream is intact. */
	EXPECT_TRUE(recv_ike(self->u, 100, 1));
	EXPECT_TRUE(nothing_to_recv(self->r));
	close(fd);
	close(p[0]);
	close(p[1]);
}

/* Both ends with the ULP. */
FIXTURE(both)
{
	int a, b;
};

ESPINTCP_FAMILY_VARIANTS(both);

FIXTURE_SETUP(both)
{
	ASSERT_EQ(espintcp_test_netns(), 0);
	ASSERT_EQ(espintcp_test_pair(variant->family, &self->a, &self->b), 0);
	ASSERT_EQ(espintcp_test_attach(self->a), 0);
	ASSERT_EQ(espintcp_test_attach(self->b), 0);
	set_timeo(self->a, SO_RCVTIMEO, 10000);
	set_timeo(self->b, SO_RCVTIMEO, 10000);
}

FIXTURE_TEARDOWN(both)
{
	close(self->a);
	close(self->b);
}

TEST_F(both, ike_round_trip)
{
	uint8_t msg[300];

	espintcp_ike_fill(msg, sizeof(msg), 1);
	ASSERT_EQ(send(self->a, msg, sizeof(msg), 0), sizeof(msg));
	EXPECT_TRUE(recv_ike(self->b, sizeof(msg), 1));
	espintcp_ike_fill(msg, 200, 2);
	ASSERT_EQ(send(self->b, msg, 200, 0), 200);
	EXPECT_TRUE(recv_ike(self->a, 200, 2));
}

struct sender {
	int fd, n;
	int ok;
};

static size_t msg_size(int i)
{
	return 8 + (i * 7919) % 600;
}

static void *sender_fn(void *arg)
{
	struct sender *s = arg;
	uint8_t msg[1024];
	int i;

	for (i = 0; i < s->n; i++) {
		espintcp_ike_fill(msg, msg_size(i), i);
		if (send(s->fd, msg, msg_size(i), 0) != (ssize_t)msg_size(i))
			return NULL;
	}
	s->ok = 1;
	return NULL;
}

/* 10,000 messages in a row, in order, none lost or merged. */
TEST_F_TIMEOUT(both, ten_thousand_messages, 600)
{
	struct sender s = { self->a, 10000, 0 };
	pthread_t t;
	int i;

	UPSTREAM_BUG("forward_alloc left charged at destroy (WARN)");
	big_rcvbuf(self->b);
	pthread_create(&t, NULL, sender_fn, &s);
	for (i = 0; i < 10000; i++)
		ASSERT_TRUE(recv_ike(self->b, msg_size(i), i)) TH_LOG("msg %d", i);
	pthread_join(t, NULL);
	EXPECT_TRUE(s.ok);
	EXPECT_TRUE(nothing_to_recv(self->b));
}

/* Attach and close, 1,000 times, with a message each way. */
TEST_F_TIMEOUT(both, attach_close_cycles, 600)
{
	uint8_t msg[64];
	int i, a, b;

	for (i = 0; i < 1000; i++) {
		ASSERT_EQ(espintcp_test_pair(variant->family, &a, &b), 0);
		ASSERT_EQ(espintcp_test_attach(a), 0);
		ASSERT_EQ(espintcp_test_attach(b), 0);
		espintcp_ike_fill(msg, sizeof(msg), i);
		ASSERT_EQ(send(a, msg, sizeof(msg), 0), sizeof(msg));
		ASSERT_TRUE(recv_ike(b, sizeof(msg), i));
		if (i % 2)	/* and sometimes with a message left queued */
			ASSERT_EQ(send(b, msg, sizeof(msg), 0), sizeof(msg));
		close(a);
		close(b);
	}
}

/* Sockets are freed after close, with messages queued both ways.  The
 * memory accounting is checked by the kernel itself: inet_sock_destruct()
 * WARNs about receive, send or forward-alloc memory still charged to a
 * socket it frees (upstream once skipped it, losing the socket's own
 * destructor), and a WARN fails the VM run.
 */
static long long sockstat(const char *field)
{
	char line[256], *p;
	long long v = -1;
	FILE *f = fopen("/proc/net/sockstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "TCP:", 4) && (p = strstr(line, field)))
			v = atoll(p + strlen(field));
	fclose(f);
	return v;
}

TEST_F_TIMEOUT(both, close_frees_sockets, 300)
{
	/* "alloc" is a per-cpu counter read without summing: allow its
	 * batching (32 per cpu); 400 leaked sockets would still show.
	 */
	long long slack = 32 * sysconf(_SC_NPROCESSORS_ONLN);
	long long alloc0 = sockstat(" alloc ");
	uint8_t msg[4000];
	int i, k, a, b;

	ASSERT_GE(alloc0, 0);
	for (i = 0; i < 200; i++) {
		ASSERT_EQ(espintcp_test_pair(variant->family, &a, &b), 0);
		ASSERT_EQ(espintcp_test_attach(a), 0);
		ASSERT_EQ(espintcp_test_attach(b), 0);
		for (k = 0; k < 5; k++) {
			espintcp_ike_fill(msg, sizeof(msg), k);
			ASSERT_EQ(send(a, msg, sizeof(msg), 0), sizeof(msg));
			ASSERT_EQ(send(b, msg, sizeof(msg), 0), sizeof(msg));
		}
		usleep(1000);
		close(a);
		close(b);
	}
	for (i = 0; i < 100 && sockstat(" alloc ") > alloc0 + slack; i++)
		usleep(50000);
	EXPECT_LE(sockstat(" alloc "), alloc0 + slack);
}

TEST_HARNESS_MAIN
