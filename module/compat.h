/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Differences between the kernel lines the module builds for (Debian's
 * 6.1 and 6.12), kept in one place, keyed on LINUX_VERSION_CODE.  Kbuild
 * includes this header before every source file, so that the .c files
 * read as code for one kernel.
 */
#ifndef _ESPINTCP_COMPAT_H
#define _ESPINTCP_COMPAT_H

#include <linux/version.h>
#include <linux/crypto.h>
#include <linux/net.h>
#include <linux/netdevice.h>
#include <net/sock.h>

/* Since 6.3, crypto completion callbacks get the request's data. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define ESPINTCP_CRYPTO_DONE(name)	void name(void *data, int err)
#define ESPINTCP_CRYPTO_DATA()		(data)
#else
#define ESPINTCP_CRYPTO_DONE(name)	\
	void name(struct crypto_async_request *base, int err)
#define ESPINTCP_CRYPTO_DATA()		(base->data)
#endif

/* Raw bytes spliced or sent from a file into a ULP socket would bypass
 * the framing.  Since 6.5 they reach ->sendmsg with MSG_SPLICE_PAGES,
 * which espintcp_sendmsg() refuses like every flag but MSG_DONTWAIT;
 * before, they arrive through ->sendpage, which must refuse them itself.
 * ->splice_eof only pushes what such a splice queued: cleared wherever
 * it exists, which is with MSG_SPLICE_PAGES (Debian's 6.1 has both
 * backported, and ->sendpage too).
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
static inline ssize_t espintcp_no_sendpage(struct socket *sock,
					   struct page *page, int offset,
					   size_t size, int flags)
{
	return -EOPNOTSUPP;
}
#endif

static inline void espintcp_refuse_sendpage(struct proto *prot,
					    struct proto_ops *ops)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
	prot->sendpage = NULL;
	ops->sendpage = espintcp_no_sendpage;
#endif
#ifdef MSG_SPLICE_PAGES
	prot->splice_eof = NULL;
	ops->splice_eof = NULL;
#endif
}

/* Frames in page fragments go to TCP by reference since 6.5 (TCP takes
 * the pages, as it does for splice); before, tcp_sendmsg_locked() copies
 * them.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#define ESPINTCP_MSG_SPLICE	MSG_SPLICE_PAGES
#else
#define ESPINTCP_MSG_SPLICE	0
#endif

/* 6.9 moved the netdev_max_backlog sysctl into net_hotdata. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
#include <net/hotdata.h>
#define espintcp_max_backlog()	READ_ONCE(net_hotdata.max_backlog)
#else
#define espintcp_max_backlog()	READ_ONCE(netdev_max_backlog)
#endif

#endif /* _ESPINTCP_COMPAT_H */
