/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * espintcp: ESP-in-TCP (RFC 8229, RFC 9329) for kernels built without
 * CONFIG_INET_ESPINTCP.  Declarations shared by the module's files.
 */
#ifndef _ESPINTCP_H
#define _ESPINTCP_H

#include <net/tcp.h>

/* The ULP name is user-space ABI: IKE daemons ask for it by name. */
#define ESPINTCP_ULP_NAME	"espintcp"

int espintcp_ulp_register(void);
void espintcp_ulp_unregister(void);

#endif /* _ESPINTCP_H */
