/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * espintcp: ESP-in-TCP (RFC 8229, RFC 9329) for kernels built without
 * CONFIG_INET_ESPINTCP.  Declarations shared by the module's files.
 */
#ifndef _ESPINTCP_H
#define _ESPINTCP_H

#include <linux/capability.h>
#include <linux/percpu.h>
#include <linux/skbuff.h>
#include <linux/workqueue.h>
#include <net/strparser.h>
#include <net/tcp.h>
#include <net/xfrm.h>

/* The ULP name is user-space ABI: IKE daemons ask for it by name. */
#define ESPINTCP_ULP_NAME	"espintcp"

/* RFC 9329 section 3: the 16-bit length counts itself. */
#define ESPINTCP_HDR_LEN	2
#define ESPINTCP_MAX_FRAME	0xffff
#define ESPINTCP_MAX_PAYLOAD	(ESPINTCP_MAX_FRAME - ESPINTCP_HDR_LEN)

/* Non-ESP marker in front of IKE messages; an ESP header is at least an
 * SPI and a sequence number.
 */
#define ESPINTCP_MARKER_LEN	4
#define ESPINTCP_ESP_HDR_LEN	8

/* Errno a reader sees after a fatal framing error (length 0 or 1). */
#define ESPINTCP_FATAL_ERRNO	EPROTO

/* Counters, kept per socket and per network namespace (the names in
 * /proc/net/espintcp_stat are in stats.c, in this order).
 */
enum espintcp_mib {
	ESPINTCP_MIB_ESP_IN,		/* ESP frames handed to XFRM */
	ESPINTCP_MIB_ESP_IN_BYTES,
	ESPINTCP_MIB_IKE_IN,		/* IKE messages queued to user space */
	ESPINTCP_MIB_IKE_IN_BYTES,
	ESPINTCP_MIB_IKE_OUT,		/* IKE messages framed from user space */
	ESPINTCP_MIB_IKE_OUT_BYTES,
	ESPINTCP_MIB_KEEPALIVE_IN,	/* NAT keep-alives, dropped */
	ESPINTCP_MIB_EMPTY_IN,		/* empty messages, ignored */
	ESPINTCP_MIB_DROP_SHORT,	/* too short for the marker or ESP */
	ESPINTCP_MIB_DROP_IKE_QUEUE,	/* IKE queue over the receive buffer */
	ESPINTCP_MIB_DROP_NO_DEV,	/* ingress device gone */
	ESPINTCP_MIB_DROP_NOMEM,
	ESPINTCP_MIB_BAD_LENGTH,	/* length 0 or 1: connection reset */
	ESPINTCP_MIB_ESP_OUT,		/* ESP frames written to the stream */
	ESPINTCP_MIB_ESP_OUT_BYTES,
	ESPINTCP_MIB_OUT_NO_SOCKET,	/* no ULP socket for the SA */
	ESPINTCP_MIB_OUT_NOT_CONNECTED,	/* not established, error, shut */
	ESPINTCP_MIB_OUT_BUSY,		/* a frame still pending, TCP full */
	ESPINTCP_MIB_OUT_QUEUE_FULL,	/* socket owned, sndbuf's worth waits */
	ESPINTCP_MIB_OUT_ERROR,		/* crypto, memory or size error */
	ESPINTCP_MIB_MAX
};

struct espintcp_mib_counters {
	u64 mibs[ESPINTCP_MIB_MAX];
};

/* A frame that TCP has taken only part of.  There is at most one per
 * socket, and nothing else may enter the stream until it is gone.  The
 * frame is @len bytes of @skb from @off: an ESP packet from XFRM, or an
 * IKE message user space sent, copied into page fragments.
 */
struct espintcp_pending {
	struct sk_buff *skb;
	unsigned int off;
	unsigned int len;
};

struct espintcp_ctx {
	struct strparser strp;
	struct sock *sk;

	/* IKE messages for user space: marker + message, one per skb. */
	struct sk_buff_head ike_queue;

	struct espintcp_pending pending;
	struct sk_buff_head out_queue;	/* ESP while the socket is owned */
	unsigned int out_queue_bytes;	/* sum of their truesize */
	struct work_struct tx_work;	/* push @pending on write space */
	struct work_struct abort_work;	/* reset after a fatal error */

	struct proto *orig_prot;
	const struct proto_ops *orig_ops;
	void (*saved_data_ready)(struct sock *sk);
	void (*saved_write_space)(struct sock *sk);

	/* Written under the socket lock (owner or BH), read locklessly. */
	u64 stats[ESPINTCP_MIB_MAX];

	struct rcu_head rcu;
};

/* The context of a socket that has the ULP attached.  Valid until the
 * socket's close, which is the only place that clears it; callers hold
 * the socket (a syscall on it, or its lock).
 */
static inline struct espintcp_ctx *espintcp_ctx(const struct sock *sk)
{
	return (__force struct espintcp_ctx *)inet_csk(sk)->icsk_ulp_data;
}

/* main.c */
extern bool espintcp_allow_userns;

/* May the current task attach the ULP or configure a TCP SA? */
static inline bool espintcp_may_configure(void)
{
	return READ_ONCE(espintcp_allow_userns) || capable(CAP_NET_ADMIN);
}

/* stats.c */
int espintcp_stats_init(void);
void espintcp_stats_exit(void);
void espintcp_net_add(struct net *net, enum espintcp_mib field, u64 n);

static inline void espintcp_count(struct espintcp_ctx *ctx,
				  enum espintcp_mib field, u64 n)
{
	WRITE_ONCE(ctx->stats[field], ctx->stats[field] + n);
	espintcp_net_add(sock_net(ctx->sk), field, n);
}

/* Drop @skb: counted as @why here and as @xfrm_mib in
 * /proc/net/xfrm_stat, where upstream counts it.
 */
static inline void espintcp_drop(struct espintcp_ctx *ctx, struct sk_buff *skb,
				 enum espintcp_mib why, int xfrm_mib)
{
	espintcp_count(ctx, why, 1);
	XFRM_INC_STATS(sock_net(ctx->sk), xfrm_mib);
	kfree_skb(skb);
}

/* ulp.c */
int espintcp_ulp_register(void);
void espintcp_ulp_unregister(void);
bool espintcp_is_ulp_sock(const struct sock *sk);

/* rx.c */
int espintcp_rx_init(struct espintcp_ctx *ctx, struct sock *sk);
void espintcp_data_ready(struct sock *sk);
int espintcp_recvmsg(struct sock *sk, struct msghdr *msg, size_t len,
		     int flags, int *addr_len);
void espintcp_abort_work(struct work_struct *work);

/* tx.c */
int espintcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size);
void espintcp_write_space(struct sock *sk);
void espintcp_tx_work(struct work_struct *work);
void espintcp_tx_free(struct espintcp_ctx *ctx);
void espintcp_release_cb(struct sock *sk);
void espintcp_xmit_esp(struct sock *sk, struct sk_buff *skb);

/* diag.c */
int espintcp_diag_get_info(struct sock *sk, struct sk_buff *skb);
size_t espintcp_diag_get_info_size(const struct sock *sk);

/* esp.c */
int espintcp_esp_init(void);
void espintcp_esp_publish(void);
void espintcp_esp_exit(void);

#endif /* _ESPINTCP_H */
