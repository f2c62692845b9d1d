// SPDX-License-Identifier: GPL-2.0-only
/*
 * espintcp transmit: frame the IKE messages user space sends, and write
 * the ESP frames XFRM hands us into the stream.
 *
 * Frames enter the TCP stream whole or not at all, as far as any other
 * writer can tell: when TCP takes only part of a frame, the rest waits in
 * ctx->pending, and every writer pushes it out before starting a frame
 * of its own.  All of this runs under the socket lock: as owner (IKE,
 * the write-space work) or from BH (ESP).  Since ESP is written from
 * softirq and from the release callback, the socket allocates atomically
 * (set at attach).
 */

#include <linux/module.h>
#include <linux/sched/signal.h>
#include <linux/uio.h>
#include <net/sock.h>
#include <net/tcp.h>
#include <net/xfrm.h>

#include "espintcp.h"

void espintcp_tx_free(struct espintcp_ctx *ctx)
{
	kvfree(ctx->pending.buf);
	kfree_skb(ctx->pending.skb);
	memset(&ctx->pending, 0, sizeof(ctx->pending));
}

static bool espintcp_pending(const struct espintcp_ctx *ctx)
{
	return ctx->pending.buf || ctx->pending.skb;
}

/* Hand TCP what it takes of the pending frame, without waiting. */
static int espintcp_push_some(struct sock *sk, struct espintcp_pending *p)
{
	struct kvec iov;
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT };

	if (p->skb)
		return skb_send_sock_locked(sk, p->skb, p->off, p->len);

	iov.iov_base = p->buf + p->off;
	iov.iov_len = p->len;
	iov_iter_kvec(&msg.msg_iter, ITER_SOURCE, &iov, 1, iov.iov_len);
	return tcp_sendmsg_locked(sk, &msg, iov.iov_len);
}

/* Push what TCP will take of the pending frame without waiting.
 * Returns 0 once nothing is pending, -EAGAIN while some remains, or the
 * TCP error that ends the stream (the pending frame is dropped then).
 */
static int espintcp_push_pending(struct sock *sk, struct espintcp_ctx *ctx)
{
	struct espintcp_pending *p = &ctx->pending;

	while (p->len) {
		int ret = espintcp_push_some(sk, p);

		if (ret == -EAGAIN || ret == 0)
			return -EAGAIN;
		if (ret < 0) {
			espintcp_tx_free(ctx);
			return ret;
		}
		p->off += ret;
		p->len -= ret;
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

		err = espintcp_pending(ctx) ? espintcp_push_pending(sk, ctx) : 0;
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
	if (espintcp_pending(ctx))
		espintcp_push_pending(sk, ctx);
	release_sock(sk);
}

void espintcp_write_space(struct sock *sk)
{
	struct espintcp_ctx *ctx = espintcp_ctx(sk);

	if (READ_ONCE(ctx->pending.buf) || READ_ONCE(ctx->pending.skb))
		schedule_work(&ctx->tx_work);
	ctx->saved_write_space(sk);
}

/* Write one ESP frame: the frame is [length][ESP packet], starting at the
 * skb's transport header.  Called with the socket locked, not owned by
 * user space (or from the release callback).  Never waits: with a frame
 * still pending and TCP full, the packet is dropped (IPsec is datagrams;
 * the inner protocols retransmit).
 */
static void espintcp_push_esp(struct sock *sk, struct espintcp_ctx *ctx,
			      struct sk_buff *skb)
{
	struct espintcp_pending *p = &ctx->pending;
	unsigned int len = skb->len - skb_transport_offset(skb);

	if (!((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT))) {
		espintcp_drop(ctx, skb, ESPINTCP_MIB_OUT_NOT_CONNECTED,
			      LINUX_MIB_XFRMOUTERROR);
		return;
	}
	if (espintcp_pending(ctx) && espintcp_push_pending(sk, ctx)) {
		espintcp_drop(ctx, skb, ESPINTCP_MIB_OUT_BUSY,
			      LINUX_MIB_XFRMOUTERROR);
		return;
	}

	espintcp_count(ctx, ESPINTCP_MIB_ESP_OUT, 1);
	espintcp_count(ctx, ESPINTCP_MIB_ESP_OUT_BYTES, len - ESPINTCP_HDR_LEN);
	p->skb = skb;
	p->off = skb_transport_offset(skb);
	p->len = len;
	espintcp_push_pending(sk, ctx);
}

/* An ESP frame from XFRM for @sk, a socket found by its 4-tuple and
 * checked to carry the ULP.  Called from BH with a reference on @sk.
 */
void espintcp_xmit_esp(struct sock *sk, struct sk_buff *skb)
{
	struct espintcp_ctx *ctx;

	bh_lock_sock(sk);
	/* Recheck under the lock: close puts the proto back first. */
	ctx = espintcp_ctx(sk);
	if (!espintcp_is_ulp_sock(sk) || !ctx) {
		bh_unlock_sock(sk);
		espintcp_net_add(sock_net(sk), ESPINTCP_MIB_OUT_NO_SOCKET, 1);
		XFRM_INC_STATS(sock_net(sk), LINUX_MIB_XFRMOUTERROR);
		kfree_skb(skb);
		return;
	}
	if (!sock_owned_by_user(sk)) {
		espintcp_push_esp(sk, ctx, skb);
	} else if (skb_queue_len(&ctx->out_queue) <
		   espintcp_max_backlog()) {
		/* Written from the release callback, in order. */
		__skb_queue_tail(&ctx->out_queue, skb);
	} else {
		espintcp_drop(ctx, skb, ESPINTCP_MIB_OUT_QUEUE_FULL,
			      LINUX_MIB_XFRMOUTERROR);
	}
	bh_unlock_sock(sk);
}

/* release_sock(): ESP that arrived while user space owned the socket.
 * Runs under the socket spinlock with BH off.
 */
void espintcp_release_cb(struct sock *sk)
{
	struct espintcp_ctx *ctx = espintcp_ctx(sk);
	struct sk_buff *skb;

	while ((skb = __skb_dequeue(&ctx->out_queue)))
		espintcp_push_esp(sk, ctx, skb);
	ctx->orig_prot->release_cb(sk);
}
