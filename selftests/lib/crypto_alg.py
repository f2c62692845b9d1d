#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Instantiate or remove a crypto algorithm through crypto_user netlink.

  crypto_alg.py add DRIVER      e.g. "pcrypt(seqiv(rfc4106(gcm(aes))))"
  crypto_alg.py del DRIVER      (driver names of at most 63 bytes)

pcrypt takes the name of the algorithm it wraps at a higher priority, so
once added, IPsec's lookup of that name gets the asynchronous instance:
the tests use it to run ESP with asynchronous completion on demand.
"""
import errno
import os
import socket
import struct
import sys

NETLINK_CRYPTO = 21
CRYPTO_MSG_NEWALG = 0x10
CRYPTO_MSG_DELALG = 0x11
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 0x2
CRYPTO_ALG_TYPE_AEAD = 0x3
CRYPTO_ALG_TYPE_MASK = 0xf


def main():
    op, driver = sys.argv[1], sys.argv[2]
    msg_type = CRYPTO_MSG_NEWALG if op == "add" else CRYPTO_MSG_DELALG
    alg = struct.pack("64s64s64sIIII", b"", driver.encode(), b"",
                      CRYPTO_ALG_TYPE_AEAD, CRYPTO_ALG_TYPE_MASK, 0, 0)
    hdr = struct.pack("=IHHII", 16 + len(alg), msg_type,
                      NLM_F_REQUEST | NLM_F_ACK, 1, 0)
    sk = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_CRYPTO)
    sk.send(hdr + alg)
    reply = sk.recv(4096)
    _, rtype, _, _, _ = struct.unpack("=IHHII", reply[:16])
    if rtype == NLMSG_ERROR:
        (err,) = struct.unpack("=i", reply[16:20])
        # "add" instantiates the template, then looks the instance up by
        # the exact driver name given, which names the implementations
        # chosen only in general terms: ENOENT then, with the instance
        # registered.  The caller checks /proc/crypto.
        if err and not (op == "add" and -err in (errno.EEXIST, errno.ENOENT)):
            print(f"crypto_alg: {op} {driver}: {os.strerror(-err)}",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
