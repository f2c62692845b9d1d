// SPDX-License-Identifier: GPL-2.0-only
/*
 * The "espintcp" TCP upper layer protocol: attach and close.
 *
 * Attaching swaps the socket's proto and proto_ops for copies whose
 * recvmsg, sendmsg, close and poll are ours, and its data_ready and
 * write_space callbacks for ours.  Close puts all of it back before the
 * TCP close runs, so that nothing of this module is referenced by the
 * socket afterwards but the ULP ops, which TCP releases last (and with
 * them the module reference it took at attach).
 */

#include <linux/module.h>
#include <linux/mutex.h>
#include <net/inet_common.h>
#include <net/tcp.h>

#include "espintcp.h"

struct espintcp_protos {
	struct proto prot;
	struct proto_ops ops;
	struct proto *base_prot;
	const struct proto_ops *base_ops;
};

/* IPv4 is built at load from tcp_prot; IPv6 at the first IPv6 attach,
 * from that socket's (tcpv6_prot is not exported).
 */
static struct espintcp_protos espintcp_v4, espintcp_v6;
static DEFINE_MUTEX(espintcp_v6_mutex);

static void espintcp_close(struct sock *sk, long timeout);

static ssize_t espintcp_no_splice_read(struct socket *sock, loff_t *ppos,
				       struct pipe_inode_info *pipe,
				       size_t len, unsigned int flags)
{
	return -EOPNOTSUPP;
}

/* Readable means an IKE message (or the end of the stream, or an error)
 * is there, not that TCP holds bytes of a frame not yet complete.
 */
static __poll_t espintcp_poll(struct file *file, struct socket *sock,
			      poll_table *wait)
{
	struct sock *sk = sock->sk;
	struct espintcp_ctx *ctx = espintcp_ctx(sk);
	__poll_t mask = tcp_poll(file, sock, wait);

	mask &= ~(EPOLLIN | EPOLLRDNORM);
	if (!skb_queue_empty_lockless(&ctx->ike_queue) ||
	    (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN))
		mask |= EPOLLIN | EPOLLRDNORM;
	return mask;
}

static void espintcp_build_protos(struct espintcp_protos *p,
				  struct proto *prot,
				  const struct proto_ops *ops)
{
	p->prot = *prot;
	p->prot.recvmsg = espintcp_recvmsg;
	p->prot.sendmsg = espintcp_sendmsg;
	p->prot.close = espintcp_close;
	p->prot.release_cb = espintcp_release_cb;

	p->ops = *ops;
	p->ops.poll = espintcp_poll;
	/* Raw bytes written or read around the framing would corrupt the
	 * stream for both ends.
	 */
	p->ops.splice_read = espintcp_no_splice_read;
	espintcp_refuse_sendpage(&p->prot, &p->ops);

	p->base_prot = prot;
	p->base_ops = ops;
}

/* The socket has the ULP attached (its proto is one of our copies). */
bool espintcp_is_ulp_sock(const struct sock *sk)
{
	const struct proto *prot = READ_ONCE(sk->sk_prot);

	return prot == &espintcp_v4.prot || prot == &espintcp_v6.prot;
}

static struct espintcp_protos *espintcp_protos_for(struct sock *sk)
{
	struct espintcp_protos *p = &espintcp_v4;

	if (sk->sk_family == AF_INET6) {
		p = &espintcp_v6;
		mutex_lock(&espintcp_v6_mutex);
		if (!p->base_prot)
			espintcp_build_protos(p, sk->sk_prot, sk->sk_socket->ops);
		mutex_unlock(&espintcp_v6_mutex);
	}

	/* A proto other than plain TCP's (another kernel user wrapped
	 * this socket): we would lose its methods.
	 */
	if (sk->sk_prot != p->base_prot || sk->sk_socket->ops != p->base_ops)
		return NULL;
	return p;
}

static int espintcp_ulp_init(struct sock *sk)
{
	struct espintcp_protos *p;
	struct espintcp_ctx *ctx;
	int err;

	if (!espintcp_may_configure())
		return -EPERM;

	/* Another user of sk_user_data (sockmap, for one) owns the
	 * socket's callbacks; we cannot share them.
	 */
	if (sk->sk_user_data)
		return -EBUSY;

	/* The ULP frames an existing connection.  The TCP core already
	 * refuses listening sockets (-ENOTCONN, we have no clone hook);
	 * refuse sockets that have no connection the same way.
	 */
	if (!((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)) ||
	    !sk->sk_socket)
		return -ENOTCONN;

	p = espintcp_protos_for(sk);
	if (!p)
		return -EOPNOTSUPP;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return -ENOMEM;
	ctx->sk = sk;
	ctx->orig_prot = sk->sk_prot;
	ctx->orig_ops = sk->sk_socket->ops;
	skb_queue_head_init(&ctx->out_queue);
	INIT_WORK(&ctx->tx_work, espintcp_tx_work);

	err = espintcp_rx_init(ctx, sk);
	if (err) {
		kfree(ctx);
		return err;
	}

	/* The socket is locked (setsockopt): the receive path runs in BH
	 * under the same lock, or from the backlog at release, so it sees
	 * either the old socket or the whole new one.
	 */
	rcu_assign_pointer(inet_csk(sk)->icsk_ulp_data, ctx);
	write_lock_bh(&sk->sk_callback_lock);
	ctx->saved_data_ready = sk->sk_data_ready;
	ctx->saved_write_space = sk->sk_write_space;
	sk->sk_data_ready = espintcp_data_ready;
	sk->sk_write_space = espintcp_write_space;
	write_unlock_bh(&sk->sk_callback_lock);
	/* ESP is written from softirq and from the release callback:
	 * TCP must neither sleep nor use the current task's page frag.
	 */
	sk->sk_allocation = GFP_ATOMIC;
	sk->sk_use_task_frag = false;
	WRITE_ONCE(sk->sk_prot, &p->prot);
	WRITE_ONCE(sk->sk_socket->ops, &p->ops);

	/* Bytes that arrived before the attach are frames too. */
	strp_check_rcv(&ctx->strp);
	return 0;
}

static void espintcp_close(struct sock *sk, long timeout)
{
	struct espintcp_ctx *ctx = espintcp_ctx(sk);
	struct proto *orig_prot = ctx->orig_prot;

	/* Put the socket back as TCP had it. */
	write_lock_bh(&sk->sk_callback_lock);
	sk->sk_data_ready = ctx->saved_data_ready;
	sk->sk_write_space = ctx->saved_write_space;
	write_unlock_bh(&sk->sk_callback_lock);
	strp_stop(&ctx->strp);
	WRITE_ONCE(sk->sk_prot, orig_prot);
	if (sk->sk_socket)
		WRITE_ONCE(sk->sk_socket->ops, ctx->orig_ops);

	/* TCP calls data_ready and write_space from softirq under the
	 * socket spinlock, without sk_callback_lock: a softirq on another
	 * CPU may have read our callbacks just before we put TCP's back,
	 * and could queue tx_work or abort_work after the cancels below
	 * (upstream's CVE-2026-23239).  Owning the socket once waits it
	 * out; any later softirq sees TCP's callbacks.
	 */
	lock_sock(sk);
	release_sock(sk);

	/* Waits out strparser's work; afterwards none of our code runs
	 * for @sk.
	 */
	strp_done(&ctx->strp);
	cancel_work_sync(&ctx->tx_work);
	if (cancel_work_sync(&ctx->abort_work))
		sock_put(sk);

	lock_sock(sk);
	skb_queue_purge(&ctx->ike_queue);
	__skb_queue_purge(&ctx->out_queue);
	espintcp_tx_free(ctx);
	rcu_assign_pointer(inet_csk(sk)->icsk_ulp_data, NULL);
	release_sock(sk);
	kfree_rcu(ctx, rcu);

	orig_prot->close(sk, timeout);
}

static struct tcp_ulp_ops espintcp_ulp_ops __read_mostly = {
	.name		= ESPINTCP_ULP_NAME,
	.owner		= THIS_MODULE,
	.init		= espintcp_ulp_init,
	.get_info	= espintcp_diag_get_info,
	.get_info_size	= espintcp_diag_get_info_size,
};

int espintcp_ulp_register(void)
{
	espintcp_build_protos(&espintcp_v4, &tcp_prot, &inet_stream_ops);
	return tcp_register_ulp(&espintcp_ulp_ops);
}

void espintcp_ulp_unregister(void)
{
	tcp_unregister_ulp(&espintcp_ulp_ops);
}
