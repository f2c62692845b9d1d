/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Differences between the kernel lines the module builds for (Debian's
 * 6.1 and 6.12), kept in one place.
 */
#ifndef _ESPINTCP_COMPAT_H
#define _ESPINTCP_COMPAT_H

#include <linux/crypto.h>
#include <linux/version.h>

/* Since 6.3, crypto completion callbacks get the request's data. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define ESPINTCP_CRYPTO_DONE(name)	void name(void *data, int err)
#define ESPINTCP_CRYPTO_DATA()		(data)
#else
#define ESPINTCP_CRYPTO_DONE(name)	\
	void name(struct crypto_async_request *base, int err)
#define ESPINTCP_CRYPTO_DATA()		(base->data)
#endif

#endif /* _ESPINTCP_COMPAT_H */
