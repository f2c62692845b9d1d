// SPDX-License-Identifier: GPL-2.0-only
/*
 * espintcp receive: split the TCP stream into RFC 9329 frames, hand ESP
 * to XFRM, queue IKE messages for user space, drop keep-alives.
 */

#include <linux/etherdevice.h>
#include <linux/highmem.h>
#include <linux/if_arp.h>
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

	/* Once only: the same stream can fail to parse again before
	 * strparser notices it is stopped (see espintcp_recv_actor()).
	 */
	if (strp->stopped)
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
	unsigned int mem_fail = strp->stats.mem_fail;
	int used;

	/* After a fatal frame: strparser itself does not check, and TCP
	 * offers the rest of the segment.
	 */
	if (strp->stopped)
		return 0;

	/* No size limit below the 16-bit length, and no assembly timer:
	 * strparser's defaults (sk_rcvbuf and SO_RCVTIMEO) would abort the
	 * stream on a small receive buffer or a slow peer.
	 */
	used = strp_process(strp, skb, offset, len, ESPINTCP_MAX_FRAME, 0);

	/* An atomic allocation failed: strp_process() keeps the -ENOMEM
	 * to itself (it only counts it).  Hand it on: then
	 * strp_read_sock() retries from its work item instead of leaving
	 * the bytes until the peer sends more, which for an IKE exchange
	 * may be never.
	 */
	if (strp->stats.mem_fail != mem_fail)
		desc->error = -ENOMEM;
	return used;
}

static int espintcp_read_sock(struct strparser *strp, read_descriptor_t *desc,
			      sk_read_actor_t actor)
{
	return tcp_read_sock(strp->sk, desc, espintcp_recv_actor);
}

/* Copy @len bytes of @skb from @off into a new skb, with @headroom
 * bytes reserved in front: one linear buffer when that fits in a page,
 * else order-0 pages (a high-order atomic allocation fails on
 * fragmented memory, and IKE messages with certificates are large).
 *
 * The copy's memory is its own.  What strparser hands us shares pages
 * with TCP's segments, and those may be a file's page cache that the
 * peer spliced into its socket (over loopback or veth the pages travel
 * as they are): ESP decrypts in place, so it must never get those.
 */
static struct sk_buff *espintcp_copy(const struct sk_buff *skb,
				     unsigned int off, unsigned int len,
				     unsigned int headroom)
{
	unsigned int linear = len;
	struct sk_buff *copy;
	int err, i;

	if (SKB_DATA_ALIGN(headroom + len) +
	    SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) > PAGE_SIZE)
		linear = 0;

	copy = alloc_skb_with_frags(headroom + linear, len - linear, 0, &err,
				    GFP_ATOMIC);
	if (!copy)
		return NULL;
	skb_reserve(copy, headroom);
	if (skb_copy_bits(skb, off, skb_put(copy, linear), linear))
		goto fail;
	off += linear;

	for (i = 0; i < skb_shinfo(copy)->nr_frags; i++) {
		skb_frag_t *frag = &skb_shinfo(copy)->frags[i];
		unsigned int size = skb_frag_size(frag);
		u8 *to = kmap_local_page(skb_frag_page(frag));

		err = skb_copy_bits(skb, off, to + skb_frag_off(frag), size);
		kunmap_local(to);
		if (err)
			goto fail;
		off += size;
		copy->len += size;
		copy->data_len += size;
	}
	return copy;

fail:
	kfree_skb(copy);
	return NULL;
}

/* An IKE message: keep the non-ESP marker (user space sees it, as with
 * upstream), queue it for recvmsg, charged to the receive buffer.
 *
 * A copy of its own size: strparser's clone carries the truesize of
 * the whole TCP segment (or a chain of them), and charging that for
 * each of many small messages from one segment would fill the receive
 * buffer with phantom bytes and drop messages.
 */
static void espintcp_rx_ike(struct espintcp_ctx *ctx, struct sk_buff *skb,
			    unsigned int off, unsigned int len)
{
	struct sock *sk = ctx->sk;
	struct sk_buff *copy;

	copy = espintcp_copy(skb, off, len, 0);
	if (!copy) {
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

/* Room for the headers we write in front of an ESP packet. */
#define ESPINTCP_RX_HEADROOM	(NET_IP_ALIGN + ETH_HLEN + \
				 sizeof(struct ipv6hdr) + sizeof(struct tcphdr))

/* The headers of an ESP packet as the receive path would have left
 * them, written in front of @esp->data:
 *
 * - an IP header from the peer to us: its addresses select the SA;
 * - a TCP header with the connection's ports: ESP compares the source
 *   port with the SA's, to notice a NAT;
 * - on an Ethernet device, an Ethernet header (the segment's own if the
 *   frame's head still holds it): packet taps push back to it, and
 *   tunnel mode moves it in front of the inner packet.
 *
 * A frame need not start in a segment whose headers are at hand:
 * strparser builds a new head for frames that span GRO aggregates,
 * with header offsets that point nowhere.  So only the socket's
 * addresses and ports are used.
 */
static void espintcp_push_headers(struct sock *sk, struct sk_buff *esp,
				  const struct sk_buff *skb,
				  const struct net_device *dev)
{
	unsigned int len = esp->len, nhlen;
	struct tcphdr *th;

	th = skb_push(esp, sizeof(*th));
	memset(th, 0, sizeof(*th));
	th->source = inet_sk(sk)->inet_dport;
	th->dest = inet_sk(sk)->inet_sport;
	th->doff = sizeof(*th) / 4;

	if (esp->protocol == htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h;

		nhlen = sizeof(*ip6h);
		ip6h = skb_push(esp, nhlen);
		memset(ip6h, 0, sizeof(*ip6h));
		ip6h->version = 6;
		ip6h->payload_len = htons(sizeof(*th) + len);
		ip6h->nexthdr = IPPROTO_TCP;
		ip6h->hop_limit = 64;
		ip6h->saddr = sk->sk_v6_daddr;
		ip6h->daddr = sk->sk_v6_rcv_saddr;
		IP6CB(esp)->iif = esp->skb_iif;
		IP6CB(esp)->nhoff = offsetof(struct ipv6hdr, nexthdr);
	} else {
		struct iphdr *iph;

		nhlen = sizeof(*iph);
		iph = skb_push(esp, nhlen);
		memset(iph, 0, sizeof(*iph));
		iph->version = 4;
		iph->ihl = sizeof(*iph) / 4;
		iph->tot_len = htons(sizeof(*iph) + sizeof(*th) + len);
		iph->frag_off = htons(IP_DF);
		iph->ttl = 64;
		iph->protocol = IPPROTO_TCP;
		iph->saddr = sk->sk_daddr;
		iph->daddr = sk->sk_rcv_saddr;
		ip_send_check(iph);
		IPCB(esp)->iif = esp->skb_iif;
	}
	skb_reset_network_header(esp);

	/* Received Ethernet headers are ETH_HLEN long, VLAN or not. */
	if (dev->type == ARPHRD_ETHER) {
		struct ethhdr *eth = skb_push(esp, ETH_HLEN);
		const u8 *mac = skb_mac_header_was_set(skb) ?
				skb_mac_header(skb) : NULL;

		if (mac && mac >= skb->head && mac + ETH_HLEN <= skb->data) {
			memcpy(eth, mac, ETH_HLEN);
		} else {
			memset(eth, 0, ETH_HLEN);
			ether_addr_copy(eth->h_dest, dev->dev_addr);
		}
		eth->h_proto = esp->protocol;
		skb_reset_mac_header(esp);
		esp->mac_len = ETH_HLEN;
		__skb_pull(esp, ETH_HLEN);
	} else {
		skb_reset_mac_header(esp);
		esp->mac_len = 0;
	}
	__skb_pull(esp, nhlen + sizeof(*th));
	skb_reset_transport_header(esp);
}

/* An ESP packet: give XFRM a copy of our own, as the ESP protocol
 * handler would get it after the outer headers, tagged with the TCP
 * encapsulation so that it matches SAs configured "encap espintcp".
 */
static void espintcp_rx_esp(struct espintcp_ctx *ctx, struct sk_buff *skb,
			    unsigned int off, unsigned int len)
{
	struct sock *sk = ctx->sk;
	struct net_device *dev;
	struct sk_buff *esp;
	bool ipv6;
	int iif;

	/* The segments' own metadata may be gone: when the receive queue
	 * runs over its buffer, TCP collapses segments into new skbs that
	 * keep only the control block (no device, no protocol).  The
	 * socket knows the family (an IPv6 socket connected to a
	 * v4-mapped address carries IPv4) and its input device.
	 */
	ipv6 = sk->sk_family == AF_INET6 &&
	       !ipv6_addr_v4mapped(&sk->sk_v6_daddr);
	iif = skb->skb_iif ?: READ_ONCE(sk->sk_rx_dst_ifindex);

	rcu_read_lock();
	dev = dev_get_by_index_rcu(sock_net(sk), iif);
	if (!dev) {
		rcu_read_unlock();
		espintcp_drop(ctx, skb, ESPINTCP_MIB_DROP_NO_DEV,
			      LINUX_MIB_XFRMINERROR);
		return;
	}
	esp = espintcp_copy(skb, off, len, ESPINTCP_RX_HEADROOM);
	if (!esp) {
		rcu_read_unlock();
		espintcp_drop(ctx, skb, ESPINTCP_MIB_DROP_NOMEM,
			      LINUX_MIB_XFRMINERROR);
		return;
	}
	esp->protocol = ipv6 ? htons(ETH_P_IPV6) : htons(ETH_P_IP);
	esp->skb_iif = iif;
	esp->mark = skb->mark;
	esp->dev = dev;
	espintcp_push_headers(sk, esp, skb, dev);
	consume_skb(skb);

	espintcp_count(ctx, ESPINTCP_MIB_ESP_IN, 1);
	espintcp_count(ctx, ESPINTCP_MIB_ESP_IN_BYTES, len);

	local_bh_disable();
	if (esp->protocol == htons(ETH_P_IPV6))
		xfrm6_rcv_encap(esp, IPPROTO_ESP, 0, TCP_ENCAP_ESPINTCP);
	else
		xfrm4_rcv_encap(esp, IPPROTO_ESP, 0, TCP_ENCAP_ESPINTCP);
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

	if (!memchr_inv(head, 0, sizeof(head))) {
		espintcp_rx_ike(ctx, skb, rxm->offset + ESPINTCP_HDR_LEN, len);
		return;
	}

	if (len < ESPINTCP_ESP_HDR_LEN)
		goto drop_short;
	espintcp_rx_esp(ctx, skb, rxm->offset + ESPINTCP_HDR_LEN, len);
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

	/* The socket's error queue is TCP's (timestamps, zerocopy
	 * notifications), which handles it first thing; urgent data has
	 * no meaning in this stream (upstream returns an IKE message for
	 * either).
	 */
	if (flags & MSG_ERRQUEUE)
		return ctx->orig_prot->recvmsg(sk, msg, len, flags, addr_len);
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;

	for (;;) {
		off = 0;
		skb = __skb_try_recv_datagram(sk, &ctx->ike_queue, flags,
					      &off, &err, &last);
		if (skb)
			break;
		if (err != -EAGAIN) {
			/* sk_err, now taken: a reset, a fatal length, or
			 * an ICMP error that left the connection up, where
			 * the rest of a pending frame may go again (the
			 * write-space work skipped it while the error was
			 * pending).
			 */
			if (READ_ONCE(ctx->pending.skb))
				schedule_work(&ctx->tx_work);
			return err;
		}

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
