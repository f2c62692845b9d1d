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
#include <net/sock.h>
#include <net/tcp.h>
#include <net/xfrm.h>

#include "espintcp.h"

void espintcp_tx_free(struct espintcp_ctx *ctx)
{
	kfree_skb(ctx->pending.skb);
	memset(&ctx->pending, 0, sizeof(ctx->pending));
}

static bool espintcp_pending(const struct espintcp_ctx *ctx)
{
	return ctx->pending.skb;
}

/* An IKE frame lives in page fragments only: TCP gets the rest of it in
 * one call, so that it leaves in as few segments as TCP makes of it
 * (one call per page would send the first piece alone and let Nagle
 * hold the rest for an ACK).
 */
static int espintcp_push_frags(struct sock *sk, struct espintcp_pending *p)
{
	const struct skb_shared_info *shi = skb_shinfo(p->skb);
	struct msghdr msg = {
		.msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL | ESPINTCP_MSG_SPLICE,
	};
	struct bio_vec bvec[MAX_SKB_FRAGS];
	unsigned int off = p->off, n = 0, i;

	for (i = 0; i < shi->nr_frags; i++) {
		const skb_frag_t *f = &shi->frags[i];
		unsigned int size = skb_frag_size(f);

		if (off >= size) {
			off -= size;
			continue;
		}
		bvec_set_page(&bvec[n++], skb_frag_page(f), size - off,
			      skb_frag_off(f) + off);
		off = 0;
	}
	iov_iter_bvec(&msg.msg_iter, ITER_SOURCE, bvec, n, p->len);
	return tcp_sendmsg_locked(sk, &msg, p->len);
}

/* Hand TCP what it takes of the pending frame, without waiting.  An ESP
 * frame goes the way the kernel sends an skb: TCP copies its linear
 * part and takes its page fragments by reference.
 */
static int espintcp_push_some(struct sock *sk, struct espintcp_pending *p)
{
	if (!skb_headlen(p->skb))
		return espintcp_push_frags(sk, p);
	return skb_send_sock_locked(sk, p->skb, p->off, p->len);
}

/* May ESP or the write-space work call into TCP?  Not unless the
 * connection is up with no error pending and the write side open: TCP
 * would fail the write with -EPIPE, and on the way take sk_err
 * (sock_error() in sk_stream_error()), which is the reader's to see (an
 * ICMP error under IP_RECVERR leaves the connection up), and send
 * SIGPIPE to whatever task is current.  Under the socket lock, nothing
 * sets sk_err or shuts the socket; a reader may clear sk_err meanwhile,
 * which only makes the answer stale the safe way.
 */
static bool espintcp_tx_blocked(const struct sock *sk)
{
	return !((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)) ||
	       READ_ONCE(sk->sk_err) ||
	       (READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN);
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
		WRITE_ONCE(p->len, p->len - ret);
	}
	consume_skb(p->skb);
	p->skb = NULL;
	p->off = 0;
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
	struct sk_buff *skb;
	__be16 hdr;
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

	/* The whole frame in order-0 pages, which TCP can take without
	 * copying them again.
	 */
	skb = alloc_skb_with_frags(0, ESPINTCP_HDR_LEN + size, 0, &err,
				   GFP_KERNEL);
	if (!skb)
		return -ENOBUFS;
	skb->data_len = ESPINTCP_HDR_LEN + size;
	skb->len = skb->data_len;
	hdr = htons(skb->len);
	if (skb_store_bits(skb, 0, &hdr, sizeof(hdr)) ||
	    skb_copy_datagram_from_iter(skb, ESPINTCP_HDR_LEN,
					&msg->msg_iter, size)) {
		kfree_skb(skb);
		return -EFAULT;
	}

	lock_sock(sk);
	err = espintcp_wait_writable(sk, ctx, &timeo);
	if (err) {
		kfree_skb(skb);
		goto out;
	}

	p = &ctx->pending;
	p->skb = skb;
	p->off = 0;
	WRITE_ONCE(p->len, skb->len);
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
	if (espintcp_pending(ctx) && !espintcp_tx_blocked(sk))
		espintcp_push_pending(sk, ctx);
	release_sock(sk);
}

void espintcp_write_space(struct sock *sk)
{
	struct espintcp_ctx *ctx = espintcp_ctx(sk);

	if (READ_ONCE(ctx->pending.skb))
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

	if (espintcp_tx_blocked(sk)) {
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
	WRITE_ONCE(p->len, len);
	espintcp_push_pending(sk, ctx);
}

/* May ESP wait for the owner to release the socket?  What waits is
 * bounded by the socket's send buffer (sk_sndbuf, SO_SNDBUF), counted in
 * truesize, besides what TCP holds, and never exceeds
 * netdev_max_backlog frames (upstream's only bound, 64 MB of frames).
 * The first frame always waits.  The skbs stay charged to their sender,
 * if local; forwarded traffic has no other bound.
 */
static bool espintcp_may_queue(const struct sock *sk,
			       const struct espintcp_ctx *ctx,
			       const struct sk_buff *skb)
{
	if (skb_queue_empty(&ctx->out_queue))
		return true;
	return skb_queue_len(&ctx->out_queue) < espintcp_max_backlog() &&
	       ctx->out_queue_bytes + skb->truesize <=
	       (unsigned int)READ_ONCE(sk->sk_sndbuf);
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
	} else if (espintcp_tx_blocked(sk)) {
		/* What push_esp() would do with it at release. */
		espintcp_drop(ctx, skb, ESPINTCP_MIB_OUT_NOT_CONNECTED,
			      LINUX_MIB_XFRMOUTERROR);
	} else if (espintcp_may_queue(sk, ctx, skb)) {
		/* Written from the release callback, in order. */
		WRITE_ONCE(ctx->out_queue_bytes,
			   ctx->out_queue_bytes + skb->truesize);
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

	while ((skb = __skb_dequeue(&ctx->out_queue))) {
		WRITE_ONCE(ctx->out_queue_bytes,
			   ctx->out_queue_bytes - skb->truesize);
		espintcp_push_esp(sk, ctx, skb);
	}
	ctx->orig_prot->release_cb(sk);
}
