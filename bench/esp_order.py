#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Do ESP packets of one SA leave in sequence-number order?

usage: esp_order.py CAPTURE.pcap

Reads a capture of one direction (tcpdump -w, Ethernet, whole packets)
and finds every ESP packet in it: plain ESP (IP protocol 50), ESP-in-UDP
(UDP port 4500, after the non-ESP marker check) and ESP-in-TCP (TCP port
4500: the stream is put back together from the segments, by sequence
number, and split into RFC 8229 frames; the capture must start while
the stream is idle, at a frame boundary).  Prints one JSON object:
ESP packets, how many came after a packet with a higher sequence
number of the same SPI ("late"), the largest such gap in sequence
numbers, and the number of TCP streams whose framing did not parse or
that had a hole (bytes the capture missed: the frames after it are not
counted).
"""

import json
import struct
import sys

ESP_PORT = 4500


def packets(path):
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (0xa1b2c3d4, 0xa1b23c4d):
            end = "<"
        elif magic in (0xd4c3b2a1, 0x4d3cb2a1):
            end = ">"
        else:
            raise SystemExit("esp_order: %s: not a pcap file" % path)
        linktype = struct.unpack(end + "I", head[20:24])[0]
        if linktype != 1:
            raise SystemExit("esp_order: link type %d, not Ethernet"
                             % linktype)
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            _, _, incl, orig = struct.unpack(end + "IIII", rec)
            data = f.read(incl)
            if incl < orig:
                raise SystemExit("esp_order: truncated packets (snaplen)")
            yield data


def l4(frame):
    """(protocol, source, destination, payload) of an IP packet."""
    etype = struct.unpack(">H", frame[12:14])[0]
    ip = frame[14:]
    if etype == 0x0800:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        return ip[9], ip[12:16], ip[16:20], ip[ihl:total]
    if etype == 0x86dd:
        plen = struct.unpack(">H", ip[4:6])[0]
        # No extension headers in the bench's traffic.
        return ip[6], ip[8:24], ip[24:40], ip[40:40 + plen]
    return None


class Order:
    def __init__(self):
        self.highest = {}
        self.packets = 0
        self.late = 0
        self.max_gap = 0

    def esp(self, payload):
        if len(payload) < 8:
            return
        spi, seq = struct.unpack(">II", payload[:8])
        self.packets += 1
        top = self.highest.get(spi)
        if top is not None and seq < top:
            self.late += 1
            self.max_gap = max(self.max_gap, top - seq)
        else:
            self.highest[spi] = seq


def main():
    order = Order()
    streams = {}
    first = {}
    for frame in packets(sys.argv[1]):
        p = l4(frame)
        if not p:
            continue
        proto, src, dst, payload = p
        if proto == 50:
            order.esp(payload)
        elif proto == 17 and len(payload) >= 8:
            sport, dport = struct.unpack(">HH", payload[:4])
            data = payload[8:]
            if ESP_PORT in (sport, dport) and len(data) > 4 and \
                    data[:4] != b"\0\0\0\0" and data != b"\xff":
                order.esp(data)
        elif proto == 6 and len(payload) >= 20:
            sport, dport, seq = struct.unpack(">HHI", payload[:8])
            if ESP_PORT not in (sport, dport):
                continue
            doff = (payload[12] >> 4) * 4
            data = payload[doff:]
            if data:
                key = (src, sport, dst, dport)
                first.setdefault(key, seq)
                segs = streams.setdefault(key, {})
                # A retransmission keeps the longest copy.
                if len(data) > len(segs.get(seq, b"")):
                    segs[seq] = data
    broken = holes = 0
    for key, segs in streams.items():
        # Put the stream together from its first captured byte.
        start = first[key]
        buf = bytearray()
        pos = start
        for seq in sorted(segs, key=lambda s: (s - start) & 0xffffffff):
            data = segs[seq]
            skip = (pos - seq) & 0xffffffff
            if skip > 0x7fffffff:
                holes += 1	# the rest cannot be framed
                break
            if skip < len(data):
                buf += data[skip:]
                pos = (seq + len(data)) & 0xffffffff
        off = 0
        while off + 2 <= len(buf):
            length = struct.unpack(">H", buf[off:off + 2])[0]
            if length < 2:
                broken += 1
                break
            if off + length > len(buf):
                break
            frame = bytes(buf[off + 2:off + length])
            if len(frame) > 4 and frame[:4] != b"\0\0\0\0":
                order.esp(frame)
            off += length
    print(json.dumps({"esp_packets": order.packets, "late": order.late,
                      "max_seq_gap": order.max_gap,
                      "unparsed_streams": broken, "holes": holes}))


if __name__ == "__main__":
    main()
