// SPDX-License-Identifier: GPL-2.0-only
/*
 * espintcp transmit: frame the IKE messages user space sends.
 *
 * Frames enter the TCP stream whole or not at all, as far as any other
 * writer can tell: when TCP takes only part of a frame, the rest waits in
 * ctx->pending, and every writer pushes it out before starting a frame
 * of its own.  All of this runs under the socket lock, as owner.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/sched/signal.h>
#include <linux/uio.h>
#include <net/sock.h>
#include <net/tcp.h>

#include "espintcp.h"

void espintcp_tx_free(struct espintcp_ctx *ctx)
{
	kvfree(ctx->pending.buf);
	memset(&ctx->pending, 0, sizeof(ctx->pending));
}

/* Push what TCP will take of the pending frame without waiting.
 * Returns 0 once nothing is pending, -EAGAIN while some remains, or the
 * TCP error that ends the stream (the pending frame is dropped then).
 */
static int espintcp_push_pending(struct sock *sk, struct espintcp_ctx *ctx)
{
	struct espintcp_pending *p = &ctx->pending;

	while (p->off < p->len) {
		struct kvec iov = {
			.iov_base = p->buf + p->off,
			.iov_len = p->len - p->off,
		};
		struct msghdr msg = { .msg_flags = MSG_DONTWAIT };
		int ret;

		iov_iter_kvec(&msg.msg_iter, ITER_SOURCE, &iov, 1, iov.iov_len);
		ret = tcp_sendmsg_locked(sk, &msg, iov.iov_len);
		if (ret == -EAGAIN)
			return -EAGAIN;
		if (ret < 0) {
			espintcp_tx_free(ctx);
			return ret;
		}
		p->off += ret;
	}
	espintcp_tx_free(ctx);
	return 0;
}

/* Wait until the stream is free for a new frame and TCP has room to
 * start it.  Called and returns with the socket locked.
 */
static int espintcp_wait_writable(struct sock *sk, struct espintcp_ctx *ctx,
				  long *timeo)
{
	int err;

	for (;;) {
		err = sock_error(sk);
		if (err)
			return err;
		if (sk->sk_shutdown & SEND_SHUTDOWN)
			return -EPIPE;

		err = ctx->pending.buf ? espintcp_push_pending(sk, ctx) : 0;
		if (err && err != -EAGAIN)
			return err;
		if (!err && sk_stream_memory_free(sk))
			return 0;

		/* Releases the socket lock while it sleeps. */
		set_bit(SOCK_NOSPACE, &sk->sk_socket->flags);
		err = sk_stream_wait_memory(sk, timeo);
		if (err)
			return err;
	}
}

int espintcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)
{
	struct espintcp_ctx *ctx = espintcp_ctx(sk);
	long timeo = sock_sndtimeo(sk, msg->msg_flags & MSG_DONTWAIT);
	struct espintcp_pending *p;
	u8 *buf;
	int err;

	/* The upstream ABI: one message per call, no flags but
	 * MSG_DONTWAIT, no control messages.
	 */
	if (msg->msg_flags & ~MSG_DONTWAIT)
		return -EOPNOTSUPP;
	if (size > ESPINTCP_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (msg->msg_controllen)
		return -EOPNOTSUPP;

	buf = kvmalloc(ESPINTCP_HDR_LEN + size, GFP_KERNEL);
	if (!buf)
		return -ENOBUFS;
	put_unaligned_be16(ESPINTCP_HDR_LEN + size, buf);
	if (!copy_from_iter_full(buf + ESPINTCP_HDR_LEN, size,
				 &msg->msg_iter)) {
		kvfree(buf);
		return -EFAULT;
	}

	lock_sock(sk);
	err = espintcp_wait_writable(sk, ctx, &timeo);
	if (err) {
		kvfree(buf);
		goto out;
	}

	p = &ctx->pending;
	p->buf = buf;
	p->off = 0;
	p->len = ESPINTCP_HDR_LEN + size;
	espintcp_count(ctx, ESPINTCP_MIB_IKE_OUT, 1);
	espintcp_count(ctx, ESPINTCP_MIB_IKE_OUT_BYTES, size);

	/* The frame is committed to the stream now: what TCP does not
	 * take here follows on write space (espintcp_write_space()).
	 */
	err = espintcp_push_pending(sk, ctx);
	if (err == -EAGAIN)
		err = 0;
out:
	release_sock(sk);
	return err ? err : size;
}

void espintcp_tx_work(struct work_struct *work)
{
	struct espintcp_ctx *ctx = container_of(work, struct espintcp_ctx,
						tx_work);
	struct sock *sk = ctx->sk;

	lock_sock(sk);
	if (ctx->pending.buf)
		espintcp_push_pending(sk, ctx);
	release_sock(sk);
}

void espintcp_write_space(struct sock *sk)
{
	struct espintcp_ctx *ctx = espintcp_ctx(sk);

	if (READ_ONCE(ctx->pending.buf))
		schedule_work(&ctx->tx_work);
	ctx->saved_write_space(sk);
}
