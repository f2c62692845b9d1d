#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A checksummed TCP transfer for the tunnel tests.

  xfer.py server ADDR PORT          accept one connection, read to EOF,
                                    print "BYTES SHA256"
  xfer.py client ADDR PORT BYTES [SECONDS]
                                    send BYTES pseudo-random bytes (fixed
                                    seed), spread evenly over SECONDS if
                                    given, print "BYTES SHA256"
"""
import hashlib
import random
import socket
import sys
import time


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    h = hashlib.sha256()
    total = 0
    if mode == "server":
        lsk = socket.socket(family, socket.SOCK_STREAM)
        lsk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsk.bind((addr, port))
        lsk.listen(1)
        print("listening", flush=True)
        sk, _ = lsk.accept()
        sk.settimeout(120)
        while True:
            buf = sk.recv(1 << 16)
            if not buf:
                break
            h.update(buf)
            total += len(buf)
    else:
        size = int(sys.argv[4])
        data = random.Random(8229).randbytes(size)
        secs = float(sys.argv[5]) if len(sys.argv) > 5 else 0
        sk = socket.create_connection((addr, port), timeout=120)
        chunk = 1 << 16
        start = time.monotonic()
        for off in range(0, size, chunk):
            if secs:
                due = start + secs * off / size
                time.sleep(max(0, due - time.monotonic()))
            sk.sendall(data[off:off + chunk])
        sk.shutdown(socket.SHUT_WR)
        sk.recv(1)
        h.update(data)
        total = size
    sk.close()
    print(total, h.hexdigest(), flush=True)


if __name__ == "__main__":
    main()
