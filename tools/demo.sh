#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The demo (make demo runs it inside the test VM, on Debian's kernel):
# two network namespaces joined by veth, and an ESP-in-TCP tunnel between
# them kept up by tools/espintcp-tunnel, as a user without an IKE daemon
# would run it: the responder listens on TCP 4500, the originator
# connects and writes IKETCP, both attach the espintcp ULP and install
# SAs with 'encap espintcp' on the connection's real ports.  A ping and
# a 10 MB checksummed transfer go through it; on the wire, only TCP port
# 4500.  tools/espintcp-stat shows each end's connection at the end.

set -u
left='' right=''
cd "$(dirname "$0")/.." || exit 1
tunnel=tools/espintcp-tunnel
stat=tools/espintcp-stat
L=198.51.100.1 R=198.51.100.2

step() { printf '\n=== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
	kill -TERM $left $right 2>/dev/null
	wait 2>/dev/null
	ip netns del left 2>/dev/null
	ip netns del right 2>/dev/null
}
trap cleanup EXIT

step "Debian's kernel, without CONFIG_INET_ESPINTCP"
show uname -r
show cat /proc/sys/net/ipv4/tcp_available_ulp
grep -qw espintcp /proc/sys/net/ipv4/tcp_available_ulp ||
	echo "(no espintcp ULP: IKE daemons get ENOENT from TCP_ULP)"

step "Load espintcp.ko"
# What modprobe does for an installed module (its MODULE_SOFTDEP).
show modprobe -a esp4 esp6 || exit 1
show insmod "build/$(uname -r)/espintcp.ko" || exit 1
show cat /proc/sys/net/ipv4/tcp_available_ulp

step "Two namespaces, 'left' ($L) and 'right' ($R), joined by veth"
ip netns add left && ip netns add right || exit 1
ip link add veth0 netns left type veth peer name veth0 netns right
ip -n left addr add $L/24 dev veth0 && ip -n left link set veth0 up
ip -n right addr add $R/24 dev veth0 && ip -n right link set veth0 up
ip -n left link set lo up && ip -n right link set lo up
show ip netns exec left ping -c 1 -W 2 $R | grep -E 'bytes from|loss'

step "espintcp-tunnel: right listens on TCP 4500, left connects"
keys="--aead rfc4106(gcm(aes))"
kl=0x0102030405060708090a0b0c0d0e0f1011121314
kr=0x1112131415161718191a1b1c1d1e1f2021222324
echo "\$ $tunnel listen --netns right --local $R --remote $L $keys \\"
echo "    --spi-out 0x2001 --key-out $kr --spi-in 0x1001 --key-in $kl --echo 2 &"
# shellcheck disable=SC2086
$tunnel listen --netns right --local $R --remote $L $keys --echo 2 \
	--spi-out 0x2001 --key-out $kr --spi-in 0x1001 --key-in $kl \
	2> >(sed 's/^/  [right] /') &
right=$!
sleep 0.5
echo "\$ $tunnel connect --netns left --local $L --remote $R $keys \\"
echo "    --spi-out 0x1001 --key-out $kl --spi-in 0x2001 --key-in $kr --echo 2 &"
# shellcheck disable=SC2086
$tunnel connect --netns left --local $L --remote $R $keys --echo 2 \
	--spi-out 0x1001 --key-out $kl --spi-in 0x2001 --key-in $kr \
	2> >(sed 's/^/  [left]  /') &
left=$!
for _ in $(seq 100); do
	port=$(ip -n left xfrm state get src $L dst $R proto esp spi 0x1001 2>/dev/null |
	       sed -n 's/.*espintcp sport \([0-9]*\) dport 4500.*/\1/p')
	[ -n "$port" ] && [ "$port" != 0 ] && break
	sleep 0.1
done
sleep 0.5
[ -n "$port" ] && [ "$port" != 0 ] || { echo "FAILED: no tunnel"; exit 1; }

step "ss shows the ULP on both sockets"
show ip netns exec left ss -tni state established
show ip netns exec right ss -tni state established
ip netns exec left ss -tni | grep -q tcp-ulp-espintcp || { echo "FAILED: no ULP on left"; exit 1; }

step "The SAs and policies it installed, on the connection's ports"
show ip -n left xfrm state
show ip -n left xfrm policy

step "The module is pinned while the sockets use it"
show grep -H . /sys/module/espintcp/refcnt

step "Ping and a 10 MB transfer through the tunnel, captured on the wire"
ip netns exec left tcpdump -i veth0 -Q out -n -U -w /tmp/wire.pcap 2>/dev/null &
dump=$!
sleep 1
show ip netns exec left ping -c 3 $R || exit 1
xfer=selftests/lib/xfer.py
ip netns exec right python3 $xfer server $R 5001 > /tmp/srv.out &
srv=$!
sleep 1
sent=$(ip netns exec left python3 $xfer client $R 5001 $((10 * 1024 * 1024)))
wait $srv
got=$(tail -n 1 /tmp/srv.out)
echo "sent:     $sent"
echo "received: $got"
[ "$sent" = "$got" ] || { echo "FAILED: transfer mismatch"; exit 1; }
sleep 0.5
kill -INT $dump; wait $dump
echo "left's packets on the wire: $(tcpdump -n -r /tmp/wire.pcap 2>/dev/null | wc -l)," \
     "TCP port 4500: $(tcpdump -n -r /tmp/wire.pcap 'tcp port 4500' 2>/dev/null | wc -l)," \
     "ESP (protocol 50): $(tcpdump -n -r /tmp/wire.pcap 'ip proto 50' 2>/dev/null | wc -l)"
tcpdump -n -r /tmp/wire.pcap 'tcp port 4500' 2>/dev/null | sed -n '20,22p'

step "espintcp-stat: each end's connection (the echoes are IKE messages)"
show $stat -n left
show $stat -n right
show $stat -n left -s

step "SIGTERM: each end removes what it installed"
kill -TERM $left $right
wait $left $right
show ip -n left xfrm state
show ip -n left xfrm policy
[ -z "$(ip -n left xfrm state)$(ip -n right xfrm state)" ] ||
	{ echo "FAILED: SAs left behind"; exit 1; }

step "Unload"
# SAs are freed by the xfrm garbage collector, a moment after the flush.
for _ in $(seq 100); do rmmod espintcp 2>/dev/null && break; sleep 0.1; done
if [ -e /sys/module/espintcp ]; then
	echo "FAILED: module still loaded"
	exit 1
fi
echo "espintcp unloaded"
echo
echo "demo complete"
