#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The demo (make demo runs it inside the test VM, on Debian's kernel):
# two network namespaces joined by veth, an RFC 8229 TCP connection
# between them on port 4500 with the espintcp ULP attached on both ends,
# as an IKE daemon would open it.
#
# Then, as an IKE daemon would after its exchange, it installs SAs with
# 'ip xfrm state ... encap espintcp' on the connection's real ports, and
# sends a ping and a 10 MB checksummed transfer through the tunnel: on the
# wire, only TCP port 4500.

set -u
cd "$(dirname "$0")/.." || exit 1
conn=tools/espintcp-conn
L=198.51.100.1 R=198.51.100.2

step() { printf '\n=== %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
	exec 7>&- 8>&- 2>/dev/null
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

step "Responder listens on TCP 4500; originator connects, writes IKETCP; both attach the ULP"
exec 7> >(ip netns exec right $conn listen $R 4500 > /tmp/right.out)
sleep 0.5
exec 8> >(ip netns exec left $conn connect $R 4500 > /tmp/left.out)
for _ in $(seq 50); do
	[ -s /tmp/left.out ] && [ -s /tmp/right.out ] && break
	sleep 0.1
done
echo "left:  $(head -n 1 /tmp/left.out)"
echo "right: $(head -n 1 /tmp/right.out)"
[ -s /tmp/left.out ] && [ -s /tmp/right.out ] || { echo "FAILED: no connection"; exit 1; }

step "ss shows the ULP on both sockets"
show ip netns exec left ss -tni state established
show ip netns exec right ss -tni state established
ip netns exec left ss -tni | grep -q tcp-ulp-espintcp || { echo "FAILED: no ULP on left"; exit 1; }

step "IKE messages both ways: each send() becomes one length-prefixed frame"
echo "IKE_SA_INIT request from left" >&8
echo "IKE_SA_INIT response from right" >&7
for _ in $(seq 50); do
	grep -q '^ike:' /tmp/left.out && grep -q '^ike:' /tmp/right.out && break
	sleep 0.1
done
echo "right received: $(grep '^ike:' /tmp/right.out)"
echo "left received:  $(grep '^ike:' /tmp/left.out)"
grep -q '^ike: IKE_SA_INIT request' /tmp/right.out &&
	grep -q '^ike: IKE_SA_INIT response' /tmp/left.out ||
	{ echo "FAILED: IKE messages did not arrive"; exit 1; }

step "Counters (per namespace)"
show ip netns exec left grep -E 'Ike|Esp' /proc/net/espintcp_stat

step "The module is pinned while the sockets use it"
show grep -H . /sys/module/espintcp/refcnt

step "SAs and policies with encap espintcp, on the connection's ports"
read -r _ _ lport _ _ rport < <(head -n 1 /tmp/left.out)
aead="aead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f1011121314 128"
for ns in left right; do
	show ip -n $ns xfrm state add src $L dst $R proto esp spi 0x1001 reqid 1 \
		mode tunnel $aead encap espintcp "$lport" "$rport" 0.0.0.0 || exit 1
	show ip -n $ns xfrm state add src $R dst $L proto esp spi 0x1002 reqid 2 \
		mode tunnel $aead encap espintcp "$rport" "$lport" 0.0.0.0 || exit 1
done
ip -n left xfrm policy add src $L dst $R dir out tmpl src $L dst $R proto esp reqid 1 mode tunnel
ip -n left xfrm policy add src $R dst $L dir in tmpl src $R dst $L proto esp reqid 2 mode tunnel
ip -n right xfrm policy add src $R dst $L dir out tmpl src $R dst $L proto esp reqid 2 mode tunnel
ip -n right xfrm policy add src $L dst $R dir in tmpl src $L dst $R proto esp reqid 1 mode tunnel
show ip -n left xfrm state get src $L dst $R proto esp spi 0x1001

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
show ip netns exec left grep -E 'Esp|Ike' /proc/net/espintcp_stat

step "Remove the SAs"
for ns in left right; do
	ip -n $ns xfrm policy flush
	ip -n $ns xfrm state flush
done

step "Close the connection and unload"
exec 7>&- 8>&-
wait
# SAs are freed by the xfrm garbage collector, a moment after the flush.
for _ in $(seq 100); do rmmod espintcp 2>/dev/null && break; sleep 0.1; done
if [ -e /sys/module/espintcp ]; then
	echo "FAILED: module still loaded"
	exit 1
fi
echo "espintcp unloaded"
echo
echo "demo complete"
