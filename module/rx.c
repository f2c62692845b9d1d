// SPDX-License-Identifier: GPL-2.0-only
/*
 * espintcp receive: split the TCP stream into RFC 9329 frames, hand ESP
 * to XFRM, queue IKE messages for user space, drop keep-alives.
 */

#include <linux/module.h>
#include <linux/skbuff.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/tcp.h>
#include <net/xfrm.h>

#include "espintcp.h"

static struct espintcp_ctx *strp_to_ctx(struct strparser *strp)
{
	return container_of(strp, struct espintcp_ctx, strp);
}

/* strparser asks for the length of the frame at the head of the stream:
 * 0 while the 16-bit length has not arrived, else the whole frame.
 */
static int espintcp_parse(struct strparser *strp, struct sk_buff *skb)
{
	struct strp_msg *rxm = strp_msg(skb);
	__be16 hdr;
	u16 len;

	if (skb->len < rxm->offset + ESPINTCP_HDR_LEN)
		return 0;
	if (skb_copy_bits(skb, rxm->offset, &hdr, sizeof(hdr)))
		return -EINVAL;

	/* RFC 9329 section 3: a length of 0 or 1 is fatal.  Returning an
	 * error makes strparser call espintcp_abort(), which resets.
	 */
	len = be16_to_cpu(hdr);
	if (len < ESPINTCP_HDR_LEN)
		return -EBADMSG;
	return len;
}

/* Called by strparser for errors it cannot recover from: a fatal length
 * (RFC 9329 section 3 says to close the connection), or anything else
 * that leaves the stream out of sync.  The reset needs the socket lock,
 * which we may hold as owner or as BH here, so it runs from a work item.
 */
static void espintcp_abort(struct strparser *strp, int err)
{
	struct espintcp_ctx *ctx = strp_to_ctx(strp);
	struct sock *sk = strp->sk;

	/* A frame waiting for the rest of its bytes is no error: we start
	 * no timer (see espintcp_read_sock()), but ignore one regardless.
	 */
	if (err == -ETIMEDOUT)
		return;

	strp_stop(strp);
	espintcp_count(ctx, ESPINTCP_MIB_BAD_LENGTH, 1);
	XFRM_INC_STATS(sock_net(sk), LINUX_MIB_XFRMINHDRERROR);

	sock_hold(sk);
	if (!schedule_work(&ctx->abort_work))
		sock_put(sk);
}

void espintcp_abort_work(struct work_struct *work)
{
	struct espintcp_ctx *ctx = container_of(work, struct espintcp_ctx,
						abort_work);
	struct sock *sk = ctx->sk;

	/* Sets sk_err (seen by recv and poll) and sends a RST. */
	tcp_abort(sk, ESPINTCP_FATAL_ERRNO);
	sock_put(sk);
}

static int espintcp_recv_actor(read_descriptor_t *desc, struct sk_buff *skb,
			       unsigned int offset, size_t len)
{
	struct strparser *strp = desc->arg.data;

	/* No size limit below the 16-bit length, and no assembly timer:
	 * strparser's defaults (sk_rcvbuf and SO_RCVTIMEO) would abort the
	 * stream on a small receive buffer or a slow peer.
	 */
	return strp_process(strp, skb, offset, len, ESPINTCP_MAX_FRAME, 0);
}

static int espintcp_read_sock(struct strparser *strp, read_descriptor_t *desc,
			      sk_read_actor_t actor)
{
	return tcp_read_sock(strp->sk, desc, espintcp_recv_actor);
}

/* An IKE message: keep the non-ESP marker (user space sees it, as with
 * upstream), queue it for recvmsg, charged to the receive buffer.
 *
 * strparser hands us a clone that carries the truesize of the whole TCP
 * segment (or a chain of them); charging that for each of many small
 * messages from one segment would fill the receive buffer with phantom
 * bytes and drop messages.  IKE is small and rare: copy it into an skb
 * of its own size, which also frees the segment sooner.
 */
static void espintcp_rx_ike(struct espintcp_ctx *ctx, struct sk_buff *skb)
{
	struct sock *sk = ctx->sk;
	unsigned int len = skb->len;
	struct sk_buff *copy;

	copy = alloc_skb(len, GFP_ATOMIC);
	if (!copy || skb_copy_bits(skb, 0, skb_put(copy, len), len)) {
		kfree_skb(copy);
		espintcp_drop(ctx, skb, ESPINTCP_MIB_DROP_NOMEM,
			      LINUX_MIB_XFRMINERROR);
		return;
	}
	consume_skb(skb);

	if (atomic_read(&sk->sk_rmem_alloc) >= READ_ONCE(sk->sk_rcvbuf) ||
	    !sk_rmem_schedule(sk, copy, copy->truesize)) {
		espintcp_drop(ctx, copy, ESPINTCP_MIB_DROP_IKE_QUEUE,
			      LINUX_MIB_XFRMINERROR);
		return;
	}

	skb_set_owner_r(copy, sk);
	skb_queue_tail(&ctx->ike_queue, copy);
	espintcp_count(ctx, ESPINTCP_MIB_IKE_IN, 1);
	espintcp_count(ctx, ESPINTCP_MIB_IKE_IN_BYTES, len);
	ctx->saved_data_ready(sk);
}

/* An ESP packet: give it to XFRM as the ESP protocol handler would get
 * it after the outer IP header, tagged with the TCP encapsulation so
 * that it matches SAs configured with "encap espintcp".
 */
static void espintcp_rx_esp(struct espintcp_ctx *ctx, struct sk_buff *skb)
{
	struct tcp_skb_cb *tcb = TCP_SKB_CB(skb);
	struct sock *sk = ctx->sk;
	struct net *net = sock_net(sk);
	unsigned int len = skb->len;

	if (!skb_reset_transport_header_careful(skb)) {
		espintcp_drop(ctx, skb, ESPINTCP_MIB_DROP_NOMEM,
			      LINUX_MIB_XFRMINERROR);
		return;
	}

	/* TCP keeps the IP control block inside its own; XFRM wants it at
	 * the start of skb->cb (IP6CB's nhoff, IPCB's options).
	 */
	memmove(skb->cb, &tcb->header, sizeof(tcb->header));

	rcu_read_lock();
	skb->dev = dev_get_by_index_rcu(net, skb->skb_iif);
	if (!skb->dev) {
		rcu_read_unlock();
		espintcp_drop(ctx, skb, ESPINTCP_MIB_DROP_NO_DEV,
			      LINUX_MIB_XFRMINERROR);
		return;
	}

	espintcp_count(ctx, ESPINTCP_MIB_ESP_IN, 1);
	espintcp_count(ctx, ESPINTCP_MIB_ESP_IN_BYTES, len);

	/* The family of the packet, not of the socket: an IPv6 socket
	 * connected to a v4-mapped address receives IPv4 packets.
	 */
	local_bh_disable();
	if (skb->protocol == htons(ETH_P_IPV6))
		xfrm6_rcv_encap(skb, IPPROTO_ESP, 0, TCP_ENCAP_ESPINTCP);
	else
		xfrm4_rcv_encap(skb, IPPROTO_ESP, 0, TCP_ENCAP_ESPINTCP);
	local_bh_enable();
	rcu_read_unlock();
}

/* One whole frame from strparser: the frame starts at rxm->offset in
 * @skb and is rxm->full_len bytes long, length field included.
 */
static void espintcp_rcv(struct strparser *strp, struct sk_buff *skb)
{
	struct espintcp_ctx *ctx = strp_to_ctx(strp);
	struct strp_msg *rxm = strp_msg(skb);
	unsigned int len = rxm->full_len - ESPINTCP_HDR_LEN;
	u8 head[ESPINTCP_MARKER_LEN];

	/* RFC 9329 section 3: an empty message is silently ignored. */
	if (len == 0) {
		espintcp_count(ctx, ESPINTCP_MIB_EMPTY_IN, 1);
		goto drop;
	}

	if (skb_copy_bits(skb, rxm->offset + ESPINTCP_HDR_LEN, head,
			  min_t(unsigned int, len, sizeof(head))))
		goto drop_short;

	/* RFC 9329 section 6.6: the NAT keep-alive is the single octet
	 * 0xFF, dropped without complaint.
	 */
	if (len == 1 && head[0] == 0xff) {
		espintcp_count(ctx, ESPINTCP_MIB_KEEPALIVE_IN, 1);
		goto drop;
	}

	/* Neither a marker with a message behind it nor an ESP header. */
	if (len <= ESPINTCP_MARKER_LEN)
		goto drop_short;

	if (!pskb_pull(skb, rxm->offset + ESPINTCP_HDR_LEN) ||
	    pskb_trim(skb, len)) {
		espintcp_drop(ctx, skb, ESPINTCP_MIB_DROP_NOMEM,
			      LINUX_MIB_XFRMINERROR);
		return;
	}

	if (!memchr_inv(head, 0, sizeof(head))) {
		espintcp_rx_ike(ctx, skb);
		return;
	}

	if (len < ESPINTCP_ESP_HDR_LEN)
		goto drop_short;
	espintcp_rx_esp(ctx, skb);
	return;

drop_short:
	espintcp_drop(ctx, skb, ESPINTCP_MIB_DROP_SHORT,
		      LINUX_MIB_XFRMINHDRERROR);
	return;
drop:
	kfree_skb(skb);
}

int espintcp_rx_init(struct espintcp_ctx *ctx, struct sock *sk)
{
	static const struct strp_callbacks cb = {
		.parse_msg	= espintcp_parse,
		.rcv_msg	= espintcp_rcv,
		.read_sock	= espintcp_read_sock,
		.abort_parser	= espintcp_abort,
	};

	skb_queue_head_init(&ctx->ike_queue);
	INIT_WORK(&ctx->abort_work, espintcp_abort_work);
	return strp_init(&ctx->strp, sk, &cb);
}

void espintcp_data_ready(struct sock *sk)
{
	strp_data_ready(&espintcp_ctx(sk)->strp);
}

/* Wait for an IKE message, an error or the end of the stream. */
static int espintcp_wait_ike(struct sock *sk, struct espintcp_ctx *ctx,
			     long *timeo)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);

	add_wait_queue(sk_sleep(sk), &wait);
	while (skb_queue_empty_lockless(&ctx->ike_queue) &&
	       !READ_ONCE(sk->sk_err) &&
	       !(READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN) &&
	       *timeo && !signal_pending(current))
		*timeo = wait_woken(&wait, TASK_INTERRUPTIBLE, *timeo);
	remove_wait_queue(sk_sleep(sk), &wait);

	return signal_pending(current) ? sock_intr_errno(*timeo) : 0;
}

/* Free an IKE message that recvmsg took off the queue (or drop the
 * reference MSG_PEEK took).  The receive path charged it to the socket
 * under the socket lock: uncharge it under the lock too, or the two
 * updates of sk_forward_alloc race (upstream frees it unlocked).
 */
static void espintcp_free_ike(struct sock *sk, struct sk_buff *skb)
{
	bool slow;

	if (!skb_unref(skb))
		return;
	slow = lock_sock_fast(sk);
	skb_orphan(skb);
	unlock_sock_fast(sk, slow);
	__kfree_skb(skb);
}

int espintcp_recvmsg(struct sock *sk, struct msghdr *msg, size_t len,
		     int flags, int *addr_len)
{
	struct espintcp_ctx *ctx = espintcp_ctx(sk);
	long timeo = sock_rcvtimeo(sk, flags & MSG_DONTWAIT);
	struct sk_buff *skb, *last;
	bool flushed = false;
	int off, err, copied;

	for (;;) {
		off = 0;
		skb = __skb_try_recv_datagram(sk, &ctx->ike_queue, flags,
					      &off, &err, &last);
		if (skb)
			break;
		if (err != -EAGAIN)
			return err;	/* sk_err: reset, fatal framing */

		if (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN) {
			/* End of stream.  Frames that arrived while the
			 * socket was owned are parsed by strparser's work:
			 * let it finish, so that they come before the 0.
			 * A fatal length that came with the FIN is an
			 * error, not an end: let the reset it scheduled
			 * set sk_err first.
			 */
			if (flushed)
				return 0;
			flushed = true;
			flush_work(&ctx->strp.work);
			flush_work(&ctx->abort_work);
			continue;
		}
		if (!timeo)
			return -EAGAIN;
		err = espintcp_wait_ike(sk, ctx, &timeo);
		if (err)
			return err;
	}

	copied = min_t(size_t, len, skb->len);
	if (copied < skb->len)
		msg->msg_flags |= MSG_TRUNC;

	err = skb_copy_datagram_msg(skb, 0, msg, copied);
	if (!err && (flags & MSG_TRUNC))
		copied = skb->len;

	espintcp_free_ike(sk, skb);
	return err ? err : copied;
}
