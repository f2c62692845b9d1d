/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * espintcp's per-socket information in sock_diag (inet_diag) replies.
 *
 * A request for TCP sockets with INET_DIAG_INFO in idiag_ext, from a
 * process with CAP_NET_ADMIN, gets for each socket that has a ULP an
 * INET_DIAG_ULP_INFO nest holding INET_ULP_INFO_NAME (a string,
 * "espintcp" here) and, for espintcp, one nest of type
 * INET_ULP_INFO_ESPINTCP with the attributes below.  Its type is far
 * above the kernel's own INET_ULP_INFO_* (kTLS, MPTCP), so that tools
 * that do not know it (ss) skip it; check the name before reading it.
 *
 * Counters are u64 (aligned with ESPINTCP_DIAG_PAD), state is u32.
 * Counters only grow, from 0 at attach; an attribute may be added, and
 * readers must skip the types they do not know.
 */
#ifndef _UAPI_LINUX_ESPINTCP_DIAG_H
#define _UAPI_LINUX_ESPINTCP_DIAG_H

#define INET_ULP_INFO_ESPINTCP	0x3e50

enum {
	ESPINTCP_DIAG_UNSPEC,
	ESPINTCP_DIAG_PAD,
	/* Counters (u64) */
	ESPINTCP_DIAG_ESP_IN,		/* ESP frames handed to XFRM */
	ESPINTCP_DIAG_ESP_IN_BYTES,	/* their bytes, without the length */
	ESPINTCP_DIAG_ESP_OUT,		/* ESP frames written to the stream */
	ESPINTCP_DIAG_ESP_OUT_BYTES,
	ESPINTCP_DIAG_IKE_IN,		/* IKE messages queued for recv */
	ESPINTCP_DIAG_IKE_IN_BYTES,
	ESPINTCP_DIAG_IKE_OUT,		/* IKE messages sent */
	ESPINTCP_DIAG_IKE_OUT_BYTES,
	ESPINTCP_DIAG_KEEPALIVE_IN,	/* NAT keep-alives (0xFF), dropped */
	ESPINTCP_DIAG_EMPTY_IN,		/* empty frames, ignored */
	ESPINTCP_DIAG_DROP_SHORT,	/* frames too short for ESP or IKE */
	ESPINTCP_DIAG_DROP_IKE_QUEUE,	/* IKE over the receive buffer */
	ESPINTCP_DIAG_DROP_NO_DEV,	/* ESP whose input device is gone */
	ESPINTCP_DIAG_DROP_NOMEM,	/* received frames, out of memory */
	ESPINTCP_DIAG_BAD_LENGTH,	/* length 0 or 1: the stream reset */
	ESPINTCP_DIAG_OUT_NOT_CONNECTED, /* ESP dropped: not connected */
	ESPINTCP_DIAG_OUT_BUSY,		/* ESP dropped: TCP full, frame pending */
	ESPINTCP_DIAG_OUT_QUEUE_FULL,	/* ESP dropped: socket owned, queue full */
	ESPINTCP_DIAG_OUT_ERROR,	/* ESP dropped: other errors */
	/* State (u32) */
	ESPINTCP_DIAG_TX_PENDING,	/* bytes of a frame TCP has not taken */
	ESPINTCP_DIAG_IKE_QUEUED,	/* IKE messages waiting for recv */
	ESPINTCP_DIAG_IKE_QUEUED_BYTES,
	ESPINTCP_DIAG_ESP_QUEUED,	/* ESP waiting for the socket's owner */
	ESPINTCP_DIAG_ESP_QUEUED_BYTES,	/* their truesize */
	__ESPINTCP_DIAG_MAX
};

#define ESPINTCP_DIAG_MAX	(__ESPINTCP_DIAG_MAX - 1)

#endif /* _UAPI_LINUX_ESPINTCP_DIAG_H */
