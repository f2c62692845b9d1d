// SPDX-License-Identifier: GPL-2.0-only
/*
 * The "espintcp" TCP upper layer protocol: attach and detach.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <net/tcp.h>

#include "espintcp.h"

static int espintcp_ulp_init(struct sock *sk)
{
	/* Another user of sk_user_data (sockmap, for one) owns the
	 * socket's callbacks; we cannot share them.
	 */
	if (sk->sk_user_data)
		return -EBUSY;

	/* The ULP frames an existing connection.  The TCP core already
	 * refuses listening sockets (-ENOTCONN, we have no clone hook);
	 * refuse sockets that have no connection the same way.
	 */
	if (!((1 << sk->sk_state) & (TCPF_ESTABLISHED | TCPF_CLOSE_WAIT)))
		return -ENOTCONN;

	return 0;
}

static struct tcp_ulp_ops espintcp_ulp_ops __read_mostly = {
	.name	= ESPINTCP_ULP_NAME,
	.owner	= THIS_MODULE,
	.init	= espintcp_ulp_init,
};

int espintcp_ulp_register(void)
{
	return tcp_register_ulp(&espintcp_ulp_ops);
}

void espintcp_ulp_unregister(void)
{
	tcp_unregister_ulp(&espintcp_ulp_ops);
}
