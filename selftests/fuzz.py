#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
#
# A stream and syscall fuzzer for espintcp, run as root inside the test
# VM (make fuzz SECONDS=N, and for a short time by make check-debug).
#
# Each step does one random thing to one of a handful of connections
# between two network namespaces joined by veth: write a random frame
# stream from the raw end (lengths 0..65535, random splits, several
# frames per write, keep-alives, junk, bytes before the attach), send
# IKE from a ULP end, receive with random flags, send UDP that a live
# SA with TCP encapsulation turns into ESP through the module, add,
# update or delete SAs, shut down, reset or close a connection, turn
# GRO on or off, delete a namespace with its sockets and SAs alive, or
# try to unload the module.  IPv4 and IPv6 alike.
#
# The run is a function of its seed, printed first: --seed S replays
# the same sequence of steps (timing may still differ).  The kernel's
# verdict is in its log: the VM runner fails the run on any splat.
#
# usage: fuzz.py [--seconds N] [--seed S] [--ko PATH]

import argparse
import ctypes
import errno
import os
import random
import socket
import struct
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
TCP_ULP = 31
IP_XFRM_POLICY = 17
IPV6_XFRM_POLICY = 35
MSG_FLAGS = (0, socket.MSG_DONTWAIT, socket.MSG_PEEK | socket.MSG_DONTWAIT,
             socket.MSG_TRUNC | socket.MSG_DONTWAIT, socket.MSG_OOB,
             socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT,
             socket.MSG_WAITALL | socket.MSG_DONTWAIT)
ADDR = {4: ("10.77.0.1", "10.77.0.2"), 6: ("fd77::1", "fd77::2")}
INNER = {4: ("10.78.0.1", "10.78.0.2"), 6: ("fd78::1", "fd78::2")}
KEY = "0x" + "11" * 20

libc = ctypes.CDLL(None, use_errno=True)


def sh(*args):
    return subprocess.run(args, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode


# The namespace we started in, to come back to.
HOME_NS = os.open("/proc/self/ns/net", os.O_RDONLY)


def setns(name):
    """Enter namespace @name, or go home with None."""
    fd = HOME_NS if name is None else os.open("/run/netns/" + name,
                                              os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        if fd != HOME_NS:
            os.close(fd)


class World:
    """Namespaces a and b joined by veth, and the connections between."""

    gen = 0

    def __init__(self, rnd):
        World.gen += 1
        self.a, self.b = "fza%d" % World.gen, "fzb%d" % World.gen
        self.conns = []
        self.spi = 0x100
        sh("ip", "netns", "add", self.a)
        sh("ip", "netns", "add", self.b)
        sh("ip", "link", "add", "v", "netns", self.a, "type", "veth",
           "peer", "name", "v", "netns", self.b)
        for ns, i in ((self.a, 0), (self.b, 1)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", "v", "up")
            for fam in (4, 6):
                sh("ip", "-n", ns, "addr", "add", ADDR[fam][i] +
                   ("/24" if fam == 4 else "/64"), "dev", "v", "nodad")
                sh("ip", "-n", ns, "addr", "add", INNER[fam][i] +
                   ("/32" if fam == 4 else "/128"), "dev", "lo")
            sh("ip", "-n", ns, "route", "add", INNER[4][1 - i], "via",
               ADDR[4][1 - i])
            sh("ip", "-n", ns, "route", "add", INNER[6][1 - i], "via",
               ADDR[6][1 - i])
        self.gro(rnd.random() < 0.5)

    def gro(self, on):
        sh("ip", "netns", "exec", self.b, "ethtool", "-K", "v", "gro",
           "on" if on else "off")
        sh("ip", "netns", "exec", self.a, "ethtool", "-K", "v", "tso",
           "off" if on else "on", "gso", "off" if on else "on")

    def close(self):
        for c in self.conns:
            c.close()
        self.conns = []

    def delete(self):
        # Sockets stay open across the namespace's deletion on purpose
        # half of the time: the caller closes them later.
        sh("ip", "netns", "del", self.a)
        sh("ip", "netns", "del", self.b)


def bypass(s, fam):
    # As an IKE daemon does: the connection's own segments skip IPsec.
    level = socket.IPPROTO_IP if fam == 4 else socket.IPPROTO_IPV6
    opt = IP_XFRM_POLICY if fam == 4 else IPV6_XFRM_POLICY
    for d in (0, 1):
        # struct xfrm_userpolicy_info: selector (56; family at 40), lft
        # (64: four infinite limits), curlft (32), priority, index, dir,
        # action (allow), flags, share.
        pol = bytearray(168)
        struct.pack_into("=H", pol, 40, socket.AF_INET if fam == 4 else
                         socket.AF_INET6)
        struct.pack_into("=4Q", pol, 56, *([(1 << 64) - 1] * 4))
        struct.pack_into("=IIBBBB", pol, 152, 0, 0, d, 0, 0, 0)
        try:
            s.setsockopt(level, opt, bytes(pol))
        except OSError:
            pass    # no policy then: the SAs' selectors are UDP only


class Conn:
    def __init__(self, world, fam, rnd):
        self.world, self.fam = world, fam
        self.raw = self.ulp = self.peer = None
        fa = socket.AF_INET if fam == 4 else socket.AF_INET6
        setns(world.b)
        lsn = socket.socket(fa, socket.SOCK_STREAM)
        lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bypass(lsn, fam)
        lsn.bind((ADDR[fam][1], 0))
        lsn.listen(1)
        port = lsn.getsockname()[1]
        setns(world.a)
        c = socket.socket(fa, socket.SOCK_STREAM)
        bypass(c, fam)
        c.settimeout(2)
        try:
            c.connect((ADDR[fam][1], port))
        except OSError:
            c.close()
            lsn.close()
            setns(None)
            raise
        setns(None)
        lsn.settimeout(2)
        s, _ = lsn.accept()
        lsn.close()
        for x in (c, s):
            x.setblocking(False)
        # b's end carries the ULP; a's end too, a third of the time,
        # else a writes raw bytes.
        self.ulp, self.peer = s, c
        self.both = rnd.random() < 0.33
        self.attached = False
        self.sa = None
        if rnd.random() < 0.3:
            self.write_raw(rnd, before_attach=True)
        self.attach()

    def attach(self):
        for x in ((self.ulp, self.peer) if self.both else (self.ulp,)):
            try:
                x.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"espintcp")
            except OSError:
                pass
        self.attached = True

    def ports(self):
        try:
            return self.peer.getsockname()[1], self.ulp.getsockname()[1]
        except OSError:
            return None

    def write_raw(self, rnd, before_attach=False):
        if self.both and not before_attach:
            return
        out = bytearray()
        for _ in range(rnd.randint(1, 20)):
            k = rnd.random()
            if k < 0.2:
                out += b"\x00\x03\xff"                       # keep-alive
            elif k < 0.3:
                out += os.urandom(rnd.randint(1, 64))      # junk
            elif k < 0.35:
                out += struct.pack(">H", rnd.choice((0, 1)))  # fatal
            else:
                n = rnd.choice((rnd.randint(0, 64), rnd.randint(0, 2000),
                                rnd.randint(0, 65533)))
                if rnd.random() < 0.5:
                    body = b"\0\0\0\0" + os.urandom(max(n - 4, 0))
                else:
                    body = struct.pack(">II", rnd.choice(
                        (0, self.world.spi, rnd.getrandbits(32))),
                        rnd.getrandbits(32)) + os.urandom(max(n - 8, 0))
                body = body[:n]
                out += struct.pack(">H", len(body) + 2) + body
        pos = 0
        while pos < len(out):
            step = rnd.randint(1, len(out) - pos)
            try:
                self.peer.send(out[pos:pos + step])
            except OSError:
                return
            pos += step

    def send_ike(self, rnd):
        s = self.peer if self.both and rnd.random() < 0.5 else self.ulp
        try:
            s.send(os.urandom(rnd.choice((1, 100, 1500, 65533, 65534))),
                   socket.MSG_DONTWAIT)
        except OSError:
            pass

    def recv(self, rnd):
        s = self.peer if self.both and rnd.random() < 0.5 else self.ulp
        try:
            s.recv(rnd.choice((0, 1, 4, 100, 70000)), rnd.choice(MSG_FLAGS))
        except (OSError, ValueError):
            pass

    def shutdown(self, rnd):
        s = rnd.choice((self.ulp, self.peer))
        try:
            s.shutdown(rnd.choice((socket.SHUT_RD, socket.SHUT_WR,
                                   socket.SHUT_RDWR)))
        except OSError:
            pass

    def reset(self, rnd):
        s = rnd.choice((self.ulp, self.peer))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()

    def close(self):
        for s in (self.ulp, self.peer):
            try:
                s.close()
            except OSError:
                pass


def sa_cmd(world, conn, rnd, what):
    """Add, update or delete the SA pair of @conn (a -> b ESP on UDP)."""
    p = conn.ports()
    if not p:
        return
    fam = conn.fam
    la, lb = ADDR[fam]
    ia, ib = INNER[fam]
    spi = str(world.spi)
    if what == "delete":
        for ns, src, dst in ((world.a, la, lb), (world.b, la, lb)):
            sh("ip", "-n", ns, "xfrm", "state", "delete", "src", src, "dst",
               dst, "proto", "esp", "spi", spi)
        sh("ip", "-n", world.a, "xfrm", "policy", "flush")
        return
    verb = "add" if what == "add" else "update"
    sport, dport = (p[0], p[1]) if rnd.random() < 0.9 else (
        rnd.randint(1, 65535), rnd.randint(1, 65535))
    for ns, sp, dp in ((world.a, sport, dport), (world.b, dport, sport)):
        sh("ip", "-n", ns, "xfrm", "state", verb, "src", la, "dst", lb,
           "proto", "esp", "spi", spi, "reqid", "7", "mode",
           rnd.choice(("tunnel", "transport")), "aead",
           "rfc4106(gcm(aes))", KEY, "128", "encap", "espintcp",
           str(sp), str(dp), "0.0.0.0")
    if verb == "add":
        sh("ip", "-n", world.a, "xfrm", "policy", "add", "src", ia, "dst",
           ib, "proto", "udp", "dir", "out", "tmpl", "src", la, "dst", lb,
           "proto", "esp", "reqid", "7", "mode", "tunnel")
    conn.sa = spi


def send_udp(world, conn, rnd):
    fam = conn.fam
    fa = socket.AF_INET if fam == 4 else socket.AF_INET6
    setns(world.a)
    u = None
    try:
        u = socket.socket(fa, socket.SOCK_DGRAM)
        u.bind((INNER[fam][0], 0))
        for _ in range(rnd.randint(1, 50)):
            u.sendto(os.urandom(rnd.choice((1, 100, 1400, 8000))),
                     socket.MSG_DONTWAIT, (INNER[fam][1], 9))
    except OSError:
        pass
    finally:
        if u:
            u.close()
        setns(None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--ko", default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(
        os.urandom(4), "little")
    print("# fuzz: seed %d (replay: fuzz.py --seed %d)" % (seed, seed),
          flush=True)
    rnd = random.Random(seed)
    # Opening an XFRM netlink socket loads xfrm_user, which compiles
    # socket policies.
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 6).close()
    # Random bytes from the seed too, so that a seed replays them.
    os.urandom = lambda n: rnd.randbytes(n)
    ko = args.ko

    world = World(rnd)
    zombies = []
    steps = unloads = netns_dels = conns = failed = 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        steps += 1
        op = rnd.random()
        if len(world.conns) < 2 or op < 0.05:
            try:
                world.conns.append(Conn(world, rnd.choice((4, 6)), rnd))
                conns += 1
            except OSError as e:
                failed += 1
                if failed == 1:
                    print("# fuzz: no connection: %s" % e, flush=True)
            continue
        c = rnd.choice(world.conns)
        if op < 0.40:
            c.write_raw(rnd)
        elif op < 0.50:
            c.send_ike(rnd)
        elif op < 0.62:
            c.recv(rnd)
        elif op < 0.70:
            send_udp(world, c, rnd)
        elif op < 0.76:
            sa_cmd(world, c, rnd, rnd.choice(("add", "update", "delete")))
        elif op < 0.80:
            c.shutdown(rnd)
        elif op < 0.83:
            c.reset(rnd)
            world.conns.remove(c)
        elif op < 0.86:
            c.close()
            world.conns.remove(c)
        elif op < 0.88:
            world.gro(rnd.random() < 0.5)
        elif op < 0.90:
            # The namespaces go with live sockets and SAs; the sockets
            # are closed a few steps later, or at the end.
            netns_dels += 1
            world.delete()
            zombies.append(world)
            world = World(rnd)
        elif op < 0.91:
            for z in zombies:
                z.close()
            zombies = []
        elif op < 0.93 and ko:
            if sh("rmmod", "espintcp") == 0:
                unloads += 1
                sh("modprobe", "-q", "esp4")
                sh("modprobe", "-q", "esp6")
                if sh("insmod", ko):
                    print("not ok - fuzz: cannot load %s again" % ko)
                    return 1
    for z in zombies + [world]:
        z.close()
    world.delete()
    sh("ip", "-all", "netns", "delete")
    print("# fuzz: %d steps, %d connections (%d failed), %d namespace "
          "deletions, %d unloads" % (steps, conns, failed, netns_dels,
                                     unloads), flush=True)
    # A fuzzer that cannot make connections tests nothing.
    return 0 if conns > failed else 1


if __name__ == "__main__":
    sys.exit(main())
