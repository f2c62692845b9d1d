// SPDX-License-Identifier: GPL-2.0-only
/*
 * Per-socket counters and state in sock_diag, through the TCP ULP's
 * diag hooks: inside INET_DIAG_ULP_INFO, after the ULP's name, as kTLS
 * exports its own.  The layout is include/uapi/linux/espintcp_diag.h.
 *
 * TCP calls these without the socket lock, and the socket may be
 * closing: the context is read under RCU (close clears it before
 * freeing it after a grace period), each field once.
 */

#include <linux/module.h>
#include <net/netlink.h>
#include <net/tcp.h>
#include <linux/espintcp_diag.h>

#include "espintcp.h"

static const u16 espintcp_diag_counter[ESPINTCP_MIB_MAX] = {
	[ESPINTCP_MIB_ESP_IN]		= ESPINTCP_DIAG_ESP_IN,
	[ESPINTCP_MIB_ESP_IN_BYTES]	= ESPINTCP_DIAG_ESP_IN_BYTES,
	[ESPINTCP_MIB_IKE_IN]		= ESPINTCP_DIAG_IKE_IN,
	[ESPINTCP_MIB_IKE_IN_BYTES]	= ESPINTCP_DIAG_IKE_IN_BYTES,
	[ESPINTCP_MIB_IKE_OUT]		= ESPINTCP_DIAG_IKE_OUT,
	[ESPINTCP_MIB_IKE_OUT_BYTES]	= ESPINTCP_DIAG_IKE_OUT_BYTES,
	[ESPINTCP_MIB_KEEPALIVE_IN]	= ESPINTCP_DIAG_KEEPALIVE_IN,
	[ESPINTCP_MIB_EMPTY_IN]		= ESPINTCP_DIAG_EMPTY_IN,
	[ESPINTCP_MIB_DROP_SHORT]	= ESPINTCP_DIAG_DROP_SHORT,
	[ESPINTCP_MIB_DROP_IKE_QUEUE]	= ESPINTCP_DIAG_DROP_IKE_QUEUE,
	[ESPINTCP_MIB_DROP_NO_DEV]	= ESPINTCP_DIAG_DROP_NO_DEV,
	[ESPINTCP_MIB_DROP_NOMEM]	= ESPINTCP_DIAG_DROP_NOMEM,
	[ESPINTCP_MIB_BAD_LENGTH]	= ESPINTCP_DIAG_BAD_LENGTH,
	[ESPINTCP_MIB_ESP_OUT]		= ESPINTCP_DIAG_ESP_OUT,
	[ESPINTCP_MIB_ESP_OUT_BYTES]	= ESPINTCP_DIAG_ESP_OUT_BYTES,
	/* ESPINTCP_MIB_OUT_NO_SOCKET: counted where there is no socket. */
	[ESPINTCP_MIB_OUT_NOT_CONNECTED] = ESPINTCP_DIAG_OUT_NOT_CONNECTED,
	[ESPINTCP_MIB_OUT_BUSY]		= ESPINTCP_DIAG_OUT_BUSY,
	[ESPINTCP_MIB_OUT_QUEUE_FULL]	= ESPINTCP_DIAG_OUT_QUEUE_FULL,
	[ESPINTCP_MIB_OUT_ERROR]	= ESPINTCP_DIAG_OUT_ERROR,
};

/* The u32 attributes: the last ones. */
#define ESPINTCP_DIAG_STATE	(ESPINTCP_DIAG_MAX - ESPINTCP_DIAG_TX_PENDING + 1)

/* The IKE messages waiting for recvmsg, and their bytes, together. */
static void espintcp_diag_ike(struct espintcp_ctx *ctx, u32 *n, u32 *bytes)
{
	struct sk_buff *skb;

	*bytes = 0;
	spin_lock_bh(&ctx->ike_queue.lock);
	*n = skb_queue_len(&ctx->ike_queue);
	skb_queue_walk(&ctx->ike_queue, skb)
		*bytes += skb->len;
	spin_unlock_bh(&ctx->ike_queue.lock);
}

int espintcp_diag_get_info(struct sock *sk, struct sk_buff *skb)
{
	struct espintcp_ctx *ctx;
	u32 ike_n, ike_bytes;
	struct nlattr *nest;
	int i, err = 0;

	rcu_read_lock();
	ctx = rcu_dereference(inet_csk(sk)->icsk_ulp_data);
	if (!ctx)
		goto out;	/* closing: the name alone */

	nest = nla_nest_start_noflag(skb, INET_ULP_INFO_ESPINTCP);
	if (!nest) {
		err = -EMSGSIZE;
		goto out;
	}
	for (i = 0; i < ESPINTCP_MIB_MAX; i++) {
		if (!espintcp_diag_counter[i])
			continue;
		err = nla_put_u64_64bit(skb, espintcp_diag_counter[i],
					READ_ONCE(ctx->stats[i]),
					ESPINTCP_DIAG_PAD);
		if (err)
			goto cancel;
	}
	espintcp_diag_ike(ctx, &ike_n, &ike_bytes);
	if (nla_put_u32(skb, ESPINTCP_DIAG_TX_PENDING,
			READ_ONCE(ctx->pending.len)) ||
	    nla_put_u32(skb, ESPINTCP_DIAG_IKE_QUEUED, ike_n) ||
	    nla_put_u32(skb, ESPINTCP_DIAG_IKE_QUEUED_BYTES, ike_bytes) ||
	    nla_put_u32(skb, ESPINTCP_DIAG_ESP_QUEUED,
			skb_queue_len_lockless(&ctx->out_queue)) ||
	    nla_put_u32(skb, ESPINTCP_DIAG_ESP_QUEUED_BYTES,
			READ_ONCE(ctx->out_queue_bytes))) {
		err = -EMSGSIZE;
		goto cancel;
	}
	nla_nest_end(skb, nest);
	goto out;

cancel:
	nla_nest_cancel(skb, nest);
out:
	rcu_read_unlock();
	return err;
}

size_t espintcp_diag_get_info_size(const struct sock *sk)
{
	return nla_total_size(0) +
	       ARRAY_SIZE(espintcp_diag_counter) * nla_total_size_64bit(8) +
	       ESPINTCP_DIAG_STATE * nla_total_size(sizeof(u32));
}
