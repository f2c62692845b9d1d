#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# ESP-in-TCP with 'ip xfrm ... encap espintcp' between two network
# namespaces joined by veth, on the real kernel with the module loaded:
# every algorithm, IPv4 and IPv6, tunnel and transport mode (ping and a
# 10 MB checksummed transfer each); proof that the traffic is TCP on the
# wire; plain ESP and ESP-in-UDP alongside; reconnect with a mapping
# event; unload refused while a TCP SA exists.
#
# The TCP connection is opened as an IKE daemon opens it
# (tools/espintcp-conn: stream prefix, ULP, socket bypass policy); the
# SAs use its real ports.  Leaves the module unloaded.

cd "$(dirname "$0")" || exit 1
. lib/ktap.sh

top=$(cd .. && pwd)
ko=${ESPINTCP_KO:-$top/build/$(uname -r)/espintcp.ko}
conn=$top/tools/espintcp-conn
xfer=$top/selftests/lib/xfer.py
tmp=$(mktemp -d)
# Bulk transfers: 10 MB, 1 MB under the debug kernel (make check-debug).
MB10=$((10 * 1024 * 1024))
[ -n "${ESPINTCP_DEBUG:-}" ] && MB10=$((1024 * 1024))
. lib/netns.sh
. lib/tunnel.sh

# name|algorithm arguments for ip xfrm state (one key both ways: these
# are tests, the SPIs differ)
ALGOS=(
	"gcm-aes128|aead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f1011121314 128"
	"gcm-aes256|aead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324 128"
	"chacha20poly1305|aead rfc7539esp(chacha20,poly1305) 0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324 128"
	"cbc-aes-hmac-sha256|enc cbc(aes) 0x0102030405060708090a0b0c0d0e0f10 auth-trunc hmac(sha256) 0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 128"
	"cbc-aes-hmac-sha256-esn|enc cbc(aes) 0x0102030405060708090a0b0c0d0e0f10 auth-trunc hmac(sha256) 0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 128 flag esn replay-window 64"
)

# A responder in right, as a peer we do not control would run it:
# accept one connection on port 4500, read the stream prefix, attach the
# ULP, then read IKE messages until the end of the stream.
responder_py='import socket,sys
l=socket.socket(); l.bind((sys.argv[1],4500)); l.listen(1)
s,_=l.accept()
assert s.recv(6,socket.MSG_WAITALL)==b"IKETCP"
s.setsockopt(socket.IPPROTO_TCP,31,b"espintcp")
print("attached",flush=True)
while s.recv(100): pass'

# Start the responder in right, output in $tmp/recv.out; its process in
# responder_pid once it listens.
start_responder() {
	ip netns exec right python3 -c "$responder_py" $R4 > "$tmp/recv.out" &
	responder_pid=$!
	for _ in $(seq 50); do
		in_right ss -Htln | grep -q ':4500 ' && break
		sleep 0.1
	done
}

cleanup() {
	close_conn
	udp_encap_stop
	netns_cleanup
	rm -rf "$tmp"
}
trap cleanup EXIT

# Ping, then a checksummed transfer of $2 bytes from left to right.
traffic() {
	local fam=$1 bytes=$2 r

	if [ "$fam" = 6 ]; then r=$R6; else r=$R4; fi
	in_left ping -c 2 -W 3 $r > "$tmp/ping" ||
		{ ktap_diag "$(cat "$tmp/ping")"; ktap_fail_msg "ping $r"; return 1; }
	netns_transfer $r "$bytes"
}

# One algorithm, family, mode: fresh connection and SAs, ping, 10 MB.
test_case() {
	local fam=$1 mode=$2 algo=${*:3} out0 in0

	open_conn "$fam" || { ktap_fail_msg "no connection"; return 1; }
	tunnel_up "$fam" "$mode" "$algo" espintcp ||
		{ close_conn; ktap_fail_msg "ip xfrm state add failed"; return 1; }
	out0=$(stat_of left espintcp_stat EspOutFrames)
	in0=$(stat_of right espintcp_stat EspInFrames)
	traffic "$fam" $MB10
	local rc=$?
	# The ESP went through the module, both ways.
	if [ $rc = 0 ] && { [ "$(stat_of left espintcp_stat EspOutFrames)" -le "$out0" ] ||
			    [ "$(stat_of right espintcp_stat EspInFrames)" -le "$in0" ]; }; then
		ktap_fail_msg "the module's counters did not move"
		rc=1
	fi
	flush_xfrm
	close_conn
	return $rc
}

# The wire carries TCP port 4500 only: no ESP (protocol 50), no UDP, no
# other IPv4 packet; and the counters agree: every packet the outbound SA
# sent is a frame the module wrote, and the other side read each one.
test_wire() {
	local rc=0 n_esp n_udp n_tcp n_other out0 in0 out in sa_out

	open_conn 4 && tunnel_up 4 tunnel "${ALGOS[0]#*|}" espintcp ||
		{ ktap_fail_msg "setup"; return 1; }
	out0=$(stat_of left espintcp_stat EspOutFrames)
	in0=$(stat_of right espintcp_stat EspInFrames)
	wire_start
	traffic 4 $((1024 * 1024)) || rc=1
	wire_stop
	n_esp=$(wire_count 'ip proto 50 or ip6 proto 50')
	n_udp=$(wire_count 'udp')
	n_tcp=$(wire_count 'tcp port 4500')
	n_other=$(wire_count 'ip and not tcp port 4500')
	ktap_diag "on the wire: $n_tcp TCP/4500, $n_esp ESP, $n_udp UDP, $n_other other IPv4"
	[ "$n_other" = 0 ] ||
		ktap_diag "$(tcpdump -n -r "$tmp/cap.l" 'ip and not tcp port 4500' 2>/dev/null | head -3)"
	[ "$n_esp" = 0 ] && [ "$n_udp" = 0 ] && [ "$n_other" = 0 ] &&
		[ "$n_tcp" -gt 100 ] || { ktap_fail_msg "traffic not only in TCP 4500"; rc=1; }

	out=$(($(stat_of left espintcp_stat EspOutFrames) - out0))
	in=$(($(stat_of right espintcp_stat EspInFrames) - in0))
	sa_out=$(ip -n left -s xfrm state get src $L4 dst $R4 proto esp spi 0x1001 |
		 awk '/lifetime current/ { getline; print $2 }' | tr -d '(packets)')
	ktap_diag "left SA sent $sa_out, module wrote $out frames, right module read $in"
	[ "$out" = "$sa_out" ] && [ "$in" = "$out" ] ||
		{ ktap_fail_msg "counters disagree"; rc=1; }
	flush_xfrm
	close_conn
	return $rc
}

# Both ends' sockets bound to their veth (SO_BINDTODEVICE, as a daemon
# in a VRF has them): ESP still finds its socket, on the device it
# leaves by.
test_bound_dev() {
	local fam=$1 rc=0

	CONN_DEV=veth0 open_conn "$fam" &&
		tunnel_up "$fam" tunnel "${ALGOS[0]#*|}" espintcp ||
		{ close_conn; ktap_fail_msg "setup"; return 1; }
	traffic "$fam" $((1024 * 1024)) || rc=1
	flush_xfrm
	close_conn
	return $rc
}

# An SA with TFC padding ("tfcpad", RFC 4303 2.4) pads what it sends:
# pings of 84 bytes leave as frames of more than 1000, and arrive.
test_tfcpad() {
	local rc=0 n small

	open_conn 4 &&
		tunnel_up 4 tunnel "${ALGOS[0]#*|} tfcpad 1000" espintcp ||
		{ ktap_fail_msg "setup"; return 1; }
	wire_start
	in_left ping -c 3 -W 3 $R4 > "$tmp/ping" ||
		{ ktap_diag "$(cat "$tmp/ping")"; ktap_fail_msg "ping"; rc=1; }
	wire_stop
	# Segments with data (not bare ACKs): all over 1000 bytes.
	n=$(wire_count 'tcp port 4500 and greater 1000')
	small=$(wire_count 'tcp port 4500 and greater 100 and less 1000')
	ktap_diag "segments with ESP over 1000 bytes: $n, under: $small"
	[ "$n" -ge 2 ] && [ "$small" = 0 ] ||
		{ ktap_fail_msg "ESP without TFC padding"; rc=1; }
	flush_xfrm
	close_conn
	return $rc
}

# ESP that comes while a system call owns the socket waits for it,
# charged to the socket's send buffer: the probe module owns the left
# socket for 8 s while pings of 1000 bytes go out for 3 s, as fast as
# ping sends them (30 s under the debug kernels, where the pings took
# more than 5 s to start).  No more than SO_SNDBUF waits (upstream
# queues up to netdev_max_backlog frames, 64 MB a socket); the rest is
# counted in EspOutQueueFull.
test_owned_queue() {
	local rc=0 sndbuf out0 full0 out full hold ms=8000
	[ -n "${ESPINTCP_DEBUG:-}" ] && ms=30000

	probe_load || { ktap_fail_msg "cannot load espintcp_test_probe.ko"; return 1; }
	open_conn 4 && tunnel_up 4 tunnel "${ALGOS[0]#*|}" espintcp ||
		{ close_conn; ktap_fail_msg "setup"; return 1; }
	in_left ping -c 1 -W 3 $R4 > /dev/null ||
		{ flush_xfrm; close_conn; ktap_fail_msg "ping"; return 1; }
	sndbuf=$(in_left ss -Htmn state established "( sport = :$LPORT )" |
		 sed -n 's/.*,tb\([0-9]*\),.*/\1/p')
	out0=$(stat_of left espintcp_stat EspOutFrames)
	full0=$(stat_of left espintcp_stat EspOutQueueFull)
	# Opened here: 'ip netns exec' mounts a /sys without debugfs.  The
	# write, from left, looks the socket up there.
	in_left sh -c "echo '$L4 $LPORT $R4 $RPORT $ms' >&9" \
		9> /sys/kernel/debug/espintcp_test_hold &
	hold=$!
	for _ in $(seq 100); do
		[ "$(probe_get holding)" = 1 ] && break
		sleep 0.05
	done
	# -S: a send buffer for hundreds of pings (ping's own holds one),
	# since what waits stays charged to the sender too.
	in_left ping -q -w 3 -i 0.002 -s 1000 -S 1000000 $R4 > "$tmp/ping" 2>&1
	[ "$(probe_get holding)" = 1 ] ||
		{ ktap_fail_msg "the socket was not owned for all the pings"; rc=1; }
	wait $hold || { ktap_fail_msg "the probe could not own the socket"; rc=1; }
	sleep 0.5
	out=$(($(stat_of left espintcp_stat EspOutFrames) - out0))
	full=$(($(stat_of left espintcp_stat EspOutQueueFull) - full0))
	ktap_diag "$(grep transmitted "$tmp/ping")"
	ktap_diag "send buffer $sndbuf: $out frames waited, $full dropped"
	[ -n "$sndbuf" ] && [ "$full" -ge 1 ] &&
		[ $(((out - 1) * 1000)) -le "$sndbuf" ] ||
		{ ktap_fail_msg "more than the send buffer waited"; rc=1; }
	in_left ping -c 2 -W 3 $R4 > /dev/null ||
		{ ktap_fail_msg "no ping after the socket was released"; rc=1; }
	flush_xfrm
	close_conn
	return $rc
}

# An ICMP error for the connection, with IP_RECVERR set on the socket (as
# a daemon may), leaves TCP up and sets sk_err for the reader.  ESP sent
# meanwhile must not hand the error to TCP's write path, which would take
# it (and send SIGPIPE to whoever is current): it is dropped, counted in
# EspOutNotConnected, and the daemon's recv still gets ECONNREFUSED.
test_sk_err_kept() {
	local rc=0 lport line nc0 nc
	local client='import errno,socket,sys
s=socket.create_connection((sys.argv[1],4500))
s.sendall(b"IKETCP")
s.setsockopt(socket.IPPROTO_TCP,31,b"espintcp")
s.setsockopt(socket.IPPROTO_IP,11,1)  # IP_RECVERR
print(s.getsockname()[1],flush=True)
for line in sys.stdin:
    if line.startswith("send"):
        s.send(b"\0\0\0\0"+b"i"*200)
        print("sent",flush=True)
        continue
    try:
        s.recv(100,socket.MSG_DONTWAIT)
        print("data",flush=True)
    except OSError as e:
        print(errno.errorcode[e.errno],flush=True)'
	# In right: the first data segment from the port, answered with
	# ICMP port unreachable quoting it (its sequence is unacknowledged).
	local icmp='import socket,struct,sys
lport=int(sys.argv[1])
p=socket.socket(socket.AF_PACKET,socket.SOCK_DGRAM,socket.htons(0x0800))
p.settimeout(30)
print("ready",flush=True)
while True:
    pkt=p.recv(65535)
    ihl=(pkt[0]&15)*4
    if pkt[9]!=6: continue
    sp,dp,seq=struct.unpack(">HHI",pkt[ihl:ihl+8])
    tot=struct.unpack(">H",pkt[2:4])[0]
    if sp==lport and dp==4500 and tot>ihl+(pkt[ihl+12]>>4)*4: break
m=struct.pack(">BBHI",3,3,0,0)+pkt[:ihl+8]
c=sum(struct.unpack(">%dH"%(len(m)//2),m))
c=(c>>16)+(c&0xffff)
c+=c>>16
m=m[:2]+struct.pack(">H",~c&0xffff)+m[4:]
r=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP)
r.sendto(m,(socket.inet_ntoa(pkt[12:16]),0))
print("icmp",seq,flush=True)'

	start_responder
	local p1=$responder_pid
	coproc CLIENT { exec ip netns exec left python3 -c "$client" $R4; }
	read -r -t 20 lport <&"${CLIENT[0]}" ||
		{ ktap_fail_msg "no connection"; kill $p1 2>/dev/null; return 1; }
	# ESP for pings only: the connection itself stays clear of the SA.
	# shellcheck disable=SC2086
	ip -n left xfrm state add src $L4 dst $R4 proto esp spi 0x1001 \
		reqid 1 mode tunnel ${ALGOS[0]#*|} \
		encap espintcp $lport 4500 0.0.0.0 &&
	ip -n left xfrm policy add src $L4 dst $R4 proto icmp dir out \
		tmpl src $L4 dst $R4 proto esp reqid 1 mode tunnel || rc=1
	ip netns exec right python3 -c "$icmp" "$lport" > "$tmp/icmp.out" &
	local p2=$!
	for _ in $(seq 100); do
		grep -q ready "$tmp/icmp.out" && break
		sleep 0.1
	done
	# Right's ACKs never arrive: the segment stays unacknowledged.
	ip netns exec left nft -f - <<-EOF || rc=1
		table inet noack {
			chain input {
				type filter hook input priority 0;
				tcp sport 4500 drop
			}
		}
	EOF
	echo send >&"${CLIENT[1]}"
	read -r -t 20 line <&"${CLIENT[0]}"
	for _ in $(seq 100); do
		grep -q icmp "$tmp/icmp.out" && break
		sleep 0.1
	done
	grep -q icmp "$tmp/icmp.out" ||
		{ ktap_fail_msg "no data segment seen"; rc=1; }
	ktap_diag "right: $(grep icmp "$tmp/icmp.out")"
	sleep 0.5
	nc0=$(stat_of left espintcp_stat EspOutNotConnected)
	in_left ping -c 3 -i 0.2 -W 1 $R4 > /dev/null
	nc=$(($(stat_of left espintcp_stat EspOutNotConnected) - nc0))
	echo recv >&"${CLIENT[1]}"
	read -r -t 20 line <&"${CLIENT[0]}"
	ktap_diag "ESP dropped with the error pending: $nc; the reader got: $line"
	[ "$line" = ECONNREFUSED ] ||
		{ ktap_fail_msg "the error did not reach the reader"; rc=1; }
	[ "$nc" -ge 3 ] ||
		{ ktap_fail_msg "ESP went to TCP with an error pending"; rc=1; }
	ip netns exec left nft delete table inet noack
	exec {CLIENT[1]}>&-
	wait "$CLIENT_PID" $p1 $p2 2>/dev/null
	flush_xfrm
	return $rc
}

# Plain ESP and ESP-in-UDP between the same namespaces still work with
# the module loaded (the kernel's own esp4/esp6 handle them).
test_plain() {
	local fam=$1 rc=0
	tunnel_up "$fam" tunnel "${ALGOS[0]#*|}" none || return 1
	traffic "$fam" $((1024 * 1024)) || rc=1
	flush_xfrm
	return $rc
}

test_udp() {
	local rc=0

	udp_encap_start 4 || return 1
	tunnel_up 4 tunnel "${ALGOS[0]#*|}" espinudp || rc=1
	[ $rc = 0 ] && { traffic 4 $((1024 * 1024)) || rc=1; }
	udp_encap_stop
	flush_xfrm
	return $rc
}

# The originator reconnects from a new port.  The responder's module
# sees ESP for its SA arrive from the new port: the kernel reports a
# mapping change (km_new_mapping), and after 'ip xfrm state update' of
# the ports on both sides traffic resumes.
test_reconnect() {
	local algo=${ALGOS[0]#*|} rc=0 old mon newport=45123

	open_conn 4 && tunnel_up 4 tunnel "$algo" espintcp ||
		{ ktap_fail_msg "setup"; return 1; }
	traffic 4 4096 || rc=1
	old=$LPORT
	close_conn
	open_conn 4 $newport || { ktap_fail_msg "no new connection"; return 1; }
	ktap_diag "reconnected: port $old -> $LPORT"

	# The originator knows its new port.
	# shellcheck disable=SC2086
	ip -n left xfrm state update src $L4 dst $R4 proto esp spi 0x1001 reqid 1 \
		mode tunnel $algo encap espintcp $LPORT 4500 0.0.0.0 &&
	# shellcheck disable=SC2086
	ip -n left xfrm state update src $R4 dst $L4 proto esp spi 0x1002 reqid 2 \
		mode tunnel $algo encap espintcp 4500 $LPORT 0.0.0.0 ||
		{ ktap_fail_msg "update (left)"; rc=1; }

	in_right timeout 10 ip xfrm monitor > "$tmp/mon" &
	mon=$!
	sleep 0.5
	local nosock=$(stat_of right espintcp_stat EspOutNoSocket)
	in_left ping -c 1 -W 1 $R4 > /dev/null	# no reply yet: right's SA is stale
	sleep 0.5
	# The reply had no socket to go to: dropped and counted.
	[ "$(stat_of right espintcp_stat EspOutNoSocket)" -gt "$nosock" ] ||
		{ ktap_fail_msg "EspOutNoSocket did not count the stale reply"; rc=1; }
	kill $mon 2>/dev/null
	wait $mon 2>/dev/null
	ktap_diag "monitor: $(tr '\n' ' ' < "$tmp/mon")"
	grep -q "$newport" "$tmp/mon" ||
		{ ktap_fail_msg "no mapping event for port $newport"; rc=1; }

	# shellcheck disable=SC2086
	ip -n right xfrm state update src $L4 dst $R4 proto esp spi 0x1001 reqid 1 \
		mode tunnel $algo encap espintcp $LPORT 4500 0.0.0.0 &&
	# shellcheck disable=SC2086
	ip -n right xfrm state update src $R4 dst $L4 proto esp spi 0x1002 reqid 2 \
		mode tunnel $algo encap espintcp 4500 $LPORT 0.0.0.0 ||
		{ ktap_fail_msg "update (right)"; rc=1; }
	traffic 4 $((1024 * 1024)) || rc=1
	flush_xfrm
	close_conn
	return $rc
}

# Deleting the SAs while a transfer runs: the transfer stops, nothing
# else happens (the VM run fails on any kernel splat).
test_delete_while_flowing() {
	local port=5999

	open_conn 4 && tunnel_up 4 tunnel "${ALGOS[0]#*|}" espintcp ||
		{ ktap_fail_msg "setup"; return 1; }
	in_right timeout 20 python3 "$xfer" server $R4 $port > /dev/null 2>&1 &
	local srv=$!
	sleep 0.5
	in_left timeout 20 python3 "$xfer" client $R4 $port $((50 * 1024 * 1024)) \
		> /dev/null 2>&1 &
	local cli=$!
	sleep 2
	flush_xfrm
	sleep 1
	kill $cli $srv 2>/dev/null
	wait $cli $srv 2>/dev/null
	close_conn
	return 0
}

# Asynchronous crypto: a pcrypt instance takes the name ESP asks for
# (seqiv(rfc4106(gcm(aes)))) at a higher priority, so every encryption
# and decryption completes from pcrypt's workers, through the module's
# completion callback on output.  crypto_user cannot remove the instance
# again (its driver name is longer than the interface's 64 bytes): the
# tests after these run with asynchronous AES-GCM too.
pcrypt_driver() {
	awk '/^name/ { name = $3 } /^driver/ { drv = $3 }
	     /^async/ && name == "seqiv(rfc4106(gcm(aes)))" &&
	     drv ~ /^pcrypt\(/ && $3 == "yes" { print drv; exit }' /proc/crypto
}

pcrypt_refcnt() {
	awk -v d="$1" '/^driver/ { hit = ($3 == d) } /^refcnt/ && hit { print $3; exit }' /proc/crypto
}

test_async() {
	local fam=$1 mode=$2 drv ref0 ref rc=0

	modprobe -q crypto_user && modprobe -q pcrypt ||
		ktap_skip_msg "no crypto_user or pcrypt" || return
	[ -n "$(pcrypt_driver)" ] ||
		python3 lib/crypto_alg.py add "pcrypt(seqiv(rfc4106(gcm(aes))))"
	drv=$(pcrypt_driver)
	[ -n "$drv" ] || { ktap_fail_msg "no async pcrypt instance"; return 1; }
	ref0=$(pcrypt_refcnt "$drv")
	open_conn "$fam" && tunnel_up "$fam" "$mode" "${ALGOS[0]#*|}" espintcp ||
		{ ktap_fail_msg "setup"; return 1; }
	ref=$(pcrypt_refcnt "$drv")
	ktap_diag "$drv: refcnt $ref0 -> $ref with the SAs"
	[ "$ref" -ge $((ref0 + 4)) ] ||
		{ ktap_fail_msg "the SAs do not use the async instance"; rc=1; }
	traffic "$fam" $MB10 || rc=1
	flush_xfrm
	close_conn
	return $rc
}

# A file spliced into the stream (sendfile from a local process) must not
# be changed by ESP decryption: the kernel's ESP decrypts in place, and
# the frame's pages are the file's page cache.  Right has an SA for the
# SPI; the frame's ciphertext is junk, so authentication fails
# (XfrmInStateProtoError), but only after decryption ran.
# Every ESP packet the module drops is freed.  The peer stops taking
# TCP (nftables drops it on right), so left's stream fills and ESP is
# dropped as EspOutBusy while a flood of UDP goes into the tunnel; then
# both connections are killed with frames pending, the SAs flushed.  A
# leaked packet would hold its SA, and the SA the module: the module
# must unload.  ASYNC=1 encrypts through pcrypt, where upstream leaked
# such packets (CVE-2025-38057, CVE-2026-31518).
test_drops_freed() {
	local async=$1 rc=0 busy0 busy
	local flood='import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    try: s.sendto(bytes(1200),(sys.argv[1],9))
    except OSError: pass'

	if [ "$async" = 1 ]; then
		modprobe -q crypto_user && modprobe -q pcrypt ||
			ktap_skip_msg "no crypto_user or pcrypt" || return
		[ -n "$(pcrypt_driver)" ] ||
			python3 lib/crypto_alg.py add "pcrypt(seqiv(rfc4106(gcm(aes))))"
		[ -n "$(pcrypt_driver)" ] ||
			{ ktap_fail_msg "no async pcrypt instance"; return 1; }
	fi
	open_conn 4 && tunnel_up 4 tunnel "${ALGOS[0]#*|}" espintcp ||
		{ ktap_fail_msg "setup"; return 1; }
	traffic 4 4096 || rc=1
	busy0=$(stat_of left espintcp_stat EspOutBusy)
	in_right nft add table inet blackhole
	in_right nft add chain inet blackhole input \
		'{ type filter hook input priority 0; }'
	in_right nft add rule inet blackhole input tcp dport 4500 drop
	in_left python3 -c "$flood" $R4 20000
	busy=$(($(stat_of left espintcp_stat EspOutBusy) - busy0))
	ktap_diag "ESP dropped with the stream full: $busy"
	[ "$busy" -gt 0 ] || { ktap_fail_msg "EspOutBusy did not count"; rc=1; }
	in_left ss -K dport = 4500 > /dev/null
	in_right ss -K sport = 4500 > /dev/null
	close_conn
	flush_xfrm
	in_right nft delete table inet blackhole
	espintcp_rmmod ||
		{ ktap_fail_msg "not unloadable: refcnt $(cat /sys/module/espintcp/refcnt)"; rc=1; }
	[ -e /sys/module/espintcp ] || espintcp_insmod "$ko" || rc=1
	return $rc
}

test_spliced_file() {
	local rc=0 before f=$tmp/frame.bin
	local send='import os,socket,sys
s=socket.create_connection((sys.argv[1],4500))
s.sendall(b"IKETCP")
f=os.open(sys.argv[2],os.O_RDONLY)
os.sendfile(s.fileno(),f,0,os.fstat(f).st_size)
print("sent",flush=True)
sys.stdin.read()'

	# A keep-alive, so that the ESP frame starts inside the file's pages,
	# then [length][SPI 0x3001][seq 1][IV 8][ciphertext 64][ICV 16].
	python3 -c 'import struct,sys
body=struct.pack(">II",0x3001,1)+bytes(range(8))+bytes(range(64,128))+bytes(16)
sys.stdout.buffer.write(b"\x00\x03\xff"+struct.pack(">H",len(body)+2)+body)' > "$f"
	cp "$f" "$f.orig"
	# shellcheck disable=SC2086
	ip -n right xfrm state add src $L4 dst $R4 proto esp spi 0x3001 mode tunnel \
		${ALGOS[0]#*|} encap espintcp 40000 4500 0.0.0.0 || return 1
	before=$(stat_of right xfrm_stat XfrmInStateProtoError)
	probe_load || { ktap_fail_msg "cannot load espintcp_test_probe.ko"; return 1; }
	probe_set esp_seen 0
	probe_set esp_not_own 0
	exec 5> >(exec ip netns exec right python3 -c "$responder_py" $R4 > "$tmp/recv.out")
	local p1=$!
	sleep 1
	exec 6> >(exec ip netns exec left python3 -c "$send" $R4 "$f" > "$tmp/send.out")
	local p2=$!
	for _ in $(seq 50); do
		[ "$(stat_of right xfrm_stat XfrmInStateProtoError)" != "$before" ] && break
		sleep 0.1
	done
	ktap_diag "XfrmInStateProtoError $before -> $(stat_of right xfrm_stat XfrmInStateProtoError)"
	[ "$(stat_of right xfrm_stat XfrmInStateProtoError)" -gt "$before" ] ||
		{ ktap_fail_msg "the frame never reached ESP decryption"; rc=1; }
	cmp -s "$f" "$f.orig" ||
		{ ktap_fail_msg "decryption wrote into the spliced file"; rc=1; }
	# Whatever the kernel's ESP checks: XFRM got a copy of our own,
	# not the file's pages.
	ktap_diag "to XFRM: $(probe_get esp_seen), not our own: $(probe_get esp_not_own)"
	[ "$(probe_get esp_seen)" -ge 1 ] && [ "$(probe_get esp_not_own)" = 0 ] ||
		{ ktap_fail_msg "XFRM got the spliced pages"; rc=1; }
	exec 5>&- 6>&-
	wait $p1 $p2 2>/dev/null
	flush_xfrm
	return $rc
}

# A peer we do not control writes 20,000 ESP frames (a real SPI, junk
# ciphertext) back to back in 1 MB writes, segment by segment (TSO and
# GSO off), to a receiver whose veth aggregates them (GRO): frames start
# and end anywhere in the aggregates, and in chains of them.  Every one
# must reach ESP, and fail its integrity check there.
test_gro() {
	local rc=0 n=20000 before nostates esp_in got
	local send='import random,socket,struct,sys
n=int(sys.argv[2]); rnd=random.Random(int(sys.argv[3]))
s=socket.create_connection((sys.argv[1],4500))
s.sendall(b"IKETCP")
buf=bytearray()
for i in range(n):
    body=struct.pack(">II",0x3002,i+1)+rnd.randbytes(8+rnd.randint(1,1400)+16)
    buf+=struct.pack(">H",len(body)+2)+body
    if len(buf)>=1<<20 or i==n-1:
        s.sendall(buf); buf=bytearray()
s.shutdown(socket.SHUT_WR)
s.recv(1)'

	in_left ethtool -K veth0 tso off gso off > /dev/null ||
		{ ktap_fail_msg "cannot turn off TSO and GSO"; return 1; }
	in_right ethtool -K veth0 gro on > /dev/null ||
		{ ktap_fail_msg "cannot turn on GRO"; return 1; }
	# shellcheck disable=SC2086
	ip -n right xfrm state add src $L4 dst $R4 proto esp spi 0x3002 mode tunnel \
		${ALGOS[0]#*|} encap espintcp 40000 4500 0.0.0.0 || return 1
	probe_load || { ktap_fail_msg "cannot load espintcp_test_probe.ko"; return 1; }
	probe_set esp_bad_header 0
	before=$(stat_of right xfrm_stat XfrmInStateProtoError)
	nostates=$(stat_of right xfrm_stat XfrmInNoStates)
	esp_in=$(stat_of right espintcp_stat EspInFrames)
	start_responder
	local p1=$responder_pid
	ktap_diag "seed $$"
	# 20000 frames take about 100 s under the debug kernel.
	in_left timeout $((${ESPINTCP_DEBUG:+5 *} 120)) \
		python3 -c "$send" $R4 $n $$ ||
		{ ktap_fail_msg "the sender failed"; rc=1; }
	wait $p1 2>/dev/null
	got=$(($(stat_of right xfrm_stat XfrmInStateProtoError) - before))
	ktap_diag "to XFRM $(($(stat_of right espintcp_stat EspInFrames) - esp_in)), reached ESP $got, XfrmInNoStates +$(($(stat_of right xfrm_stat XfrmInNoStates) - nostates)), bad headers $(probe_get esp_bad_header)"
	[ "$got" = $n ] ||
		{ ktap_fail_msg "$got of $n frames reached ESP"; rc=1; }
	[ "$(probe_get esp_bad_header)" = 0 ] ||
		{ ktap_fail_msg "XFRM got packets without a valid IP header"; rc=1; }
	in_right ethtool -K veth0 gro off > /dev/null
	in_left ethtool -K veth0 tso on gso on > /dev/null
	flush_xfrm
	return $rc
}

# An algorithm or key the kernel refuses gets the kernel's own error,
# with or without TCP encapsulation.
test_bad_algorithm() {
	local rc=0 a b spec

	for spec in "aead rfc4106(gcm(nosuchcipher)) 0x0102030405060708090a0b0c0d0e0f1011121314 128" \
		    "aead rfc4106(gcm(aes)) 0x01020304 128" \
		    "enc cbc(aes) 0x0102 auth-trunc hmac(sha256) 0x01 128"; do
		# shellcheck disable=SC2086
		a=$(ip -n left xfrm state add src $L4 dst $R4 proto esp spi 0x2001 \
			mode tunnel $spec encap espintcp 40000 4500 0.0.0.0 2>&1) &&
			{ ktap_fail_msg "accepted: $spec"; rc=1; }
		# shellcheck disable=SC2086
		b=$(ip -n left xfrm state add src $L4 dst $R4 proto esp spi 0x2001 \
			mode tunnel $spec 2>&1) &&
			{ ktap_fail_msg "accepted without encap: $spec"; rc=1; }
		ktap_diag "$a"
		[ -n "$a" ] && [ "$a" = "$b" ] ||
			{ ktap_fail_msg "errors differ: '$a' / '$b'"; rc=1; }
	done
	flush_xfrm
	return $rc
}

# Calls of a kernel function, counted by a kprobe event of our own
# group.  tracefs is reached from here: 'ip netns exec' mounts a /sys
# without it.
kprobes=/sys/kernel/tracing
kcount_start() {	# FUNCTION
	[ -e $kprobes/kprobe_events ] ||
		mount -t tracefs nodev $kprobes 2>/dev/null
	[ -e $kprobes/kprobe_events ] || return 1
	kcount_stop "$1"
	echo "p:espintcp_test/$1 $1" >> $kprobes/kprobe_events &&
		echo 1 > "$kprobes/events/espintcp_test/$1/enable" &&
		return 0
	kcount_stop "$1"
	return 1
}

kcount() {	# FUNCTION: its calls since kcount_start
	awk -v e="$1" '$1 == e { print $2; exit }' $kprobes/kprobe_profile
}

# Removes the event, also one an interrupted run left enabled.
kcount_stop() {	# FUNCTION
	[ -e "$kprobes/events/espintcp_test/$1" ] || return 0
	echo 0 > "$kprobes/events/espintcp_test/$1/enable"
	echo "-:espintcp_test/$1" >> $kprobes/kprobe_events
}

# A frame that fits in a page is built there, once, and TCP takes the
# page by reference: skb_cow_data() is never called on transmit (it
# would pull the whole packet into one linear buffer, which TCP would
# copy again).  What ESP gets here are clones of the inner TCP's
# segments (TCP over an XFRM route does no GSO), whose pages TCP keeps
# for retransmission.  Receive needs it neither: ESP decrypts the
# module's own copy.  Both directions count: the ACKs go back as ESP.
test_tx_in_page() {	# FAM MODE
	local fam=$1 mode=$2 r=$R4 rc=0 c0 c out0 out

	[ "$fam" = 6 ] && r=$R6
	kcount_start skb_cow_data ||
		{ ktap_skip_msg "no kprobe events"; return $?; }
	open_conn "$fam" && tunnel_up "$fam" "$mode" "${ALGOS[0]#*|}" espintcp ||
		{ close_conn; flush_xfrm; kcount_stop skb_cow_data
		  ktap_fail_msg "setup"; return 1; }
	c0=$(kcount skb_cow_data)
	out0=$(stat_of left espintcp_stat EspOutFrames)
	netns_transfer $r $((MB10 / 5)) || rc=1
	c=$(($(kcount skb_cow_data) - c0))
	out=$(($(stat_of left espintcp_stat EspOutFrames) - out0))
	ktap_diag "$out frames, skb_cow_data() called $c times"
	[ "$out" -ge $((MB10 / 5 / 2048)) ] ||
		{ ktap_fail_msg "too few frames"; rc=1; }
	[ "$c" = 0 ] || { ktap_fail_msg "packets made linear"; rc=1; }
	flush_xfrm
	close_conn
	kcount_stop skb_cow_data
	return $rc
}

# A frame larger than a page (a 9000-byte MTU, where pages are 4 KB) is
# built in the skb itself: the transfer arrives whole, the frames are
# larger than a page on average, and skb_cow_data() made writable all
# that left sent but the few that fit in a page (the connection's
# handshake, last ACKs and FIN: 5 or 6 of them).
test_tx_large_frames() {
	local rc=0 c0 c out0 out bytes0 bytes n page

	page=$(getconf PAGESIZE)
	[ "$page" -lt 8192 ] ||
		{ ktap_skip_msg "$page-byte pages hold 9000-byte frames"
		  return $?; }
	kcount_start skb_cow_data ||
		{ ktap_skip_msg "no kprobe events"; return $?; }
	for n in left right; do
		ip -n $n link set veth0 mtu 9000 || rc=1
	done
	if [ $rc = 0 ] && open_conn 4 &&
	   tunnel_up 4 tunnel "${ALGOS[0]#*|}" espintcp; then
		c0=$(kcount skb_cow_data)
		out0=$(stat_of left espintcp_stat EspOutFrames)
		bytes0=$(stat_of left espintcp_stat EspOutBytes)
		traffic 4 $((MB10 / 5)) || rc=1
		c=$(($(kcount skb_cow_data) - c0))
		out=$(($(stat_of left espintcp_stat EspOutFrames) - out0))
		bytes=$(($(stat_of left espintcp_stat EspOutBytes) - bytes0))
		ktap_diag "$out frames of $((bytes / (out ? out : 1))) bytes on average, skb_cow_data() called $c times"
		[ "$out" -ge 1 ] && [ $((bytes / out)) -gt "$page" ] ||
			{ ktap_fail_msg "no frames larger than a page"; rc=1; }
		[ "$c" -ge $((out - 8)) ] ||
			{ ktap_fail_msg "large frames not built in the skb"
			  rc=1; }
	else
		ktap_fail_msg "setup"
		rc=1
	fi
	flush_xfrm
	close_conn
	for n in left right; do
		ip -n $n link set veth0 mtu 1500
	done
	kcount_stop skb_cow_data
	return $rc
}

# One round for test_zc_frags: a transport-mode IPv6 SA, COUNT UDP
# datagrams of 1200 bytes sent zerocopy from a registered buffer, torn
# down.  Returns send_zc's status (4: no io_uring zerocopy).
zc_round() {	# COUNT
	local st out0

	open_conn 6 && tunnel_up 6 transport "${ALGOS[0]#*|}" espintcp ||
		{ close_conn; flush_xfrm; return 1; }
	out0=$(stat_of left espintcp_stat EspOutFrames)
	in_left "$top/selftests/send_zc" $R6 9 "$1" 1200 > "$tmp/zc" 2>&1
	st=$?
	sleep 1
	zc_frames=$(($(stat_of left espintcp_stat EspOutFrames) - out0))
	ktap_diag "send_zc: $(cat "$tmp/zc"); $zc_frames ESP frames"
	flush_xfrm
	close_conn
	# The states go with the XFRM garbage collector.
	sleep 2
	return $st
}

# Free memory in kB, counting slab memory as free: what is not pages
# allocated outright.  Freed objects may stay in slabs (and, under KASAN,
# in its quarantine), and the run must not look like a leak for that.
mem_free() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
	awk '$1 == "MemFree:" || $1 == "Slab:" { n += $2 } END { print n }' \
		/proc/meminfo
}

# io_uring's zerocopy send from a registered buffer gives ESP skbs whose
# page references io_uring manages (SKBFL_MANAGED_FRAG_REFS).  Building
# the frame in a page fragment must turn them into ordinary references
# first, as the kernel's ESP does, or the skb would release none of its
# fragments, the frame's page fragment among them.  60000 datagrams of
# 1200 bytes (about 78 MB of frames): once all is torn down, the free
# memory is within a third of that of what it was.  A leak check only:
# a build without the downgrade did not leak measurably here either.
test_zc_frags() {
	local st free0 free1 count=60000

	[ -n "${ESPINTCP_DEBUG:-}" ] && count=10000
	zc_round 200
	st=$?
	[ $st = 4 ] && { ktap_skip_msg "no io_uring zerocopy send"; return $?; }
	[ $st = 0 ] || { ktap_fail_msg "warm-up round"; return 1; }
	free0=$(mem_free)
	zc_round $count || { ktap_fail_msg "send_zc"; return 1; }
	free1=$(mem_free)
	ktap_diag "free memory before $free0 kB, after $free1 kB"
	[ "$zc_frames" -ge $((count * 9 / 10)) ] ||
		{ ktap_fail_msg "the datagrams did not go through the SA"
		  return 1; }
	[ $((free0 - free1)) -lt $((count * 1300 / 1024 / 3)) ] ||
		{ ktap_fail_msg "$(((free0 - free1) / 1024)) MB lost"
		  return 1; }
}

# No unload while a TCP SA exists; unload once the SAs are flushed.
test_unload() {
	local rc=0 out

	open_conn 4 && tunnel_up 4 tunnel "${ALGOS[0]#*|}" espintcp ||
		{ ktap_fail_msg "setup"; return 1; }
	close_conn
	if out=$(rmmod espintcp 2>&1); then
		ktap_fail_msg "unloaded with TCP SAs in place"
		return 1
	fi
	grep -q "in use" <<<"$out" || { ktap_fail_msg "rmmod: $out"; rc=1; }
	flush_xfrm
	espintcp_rmmod || { ktap_fail_msg "still loaded after the flush"; rc=1; }

	# The kernel's own ESP is back: plain and UDP SAs still work.
	test_plain 4 || rc=1
	espintcp_insmod "$ko" || rc=1
	return $rc
}

# name|function and arguments; "xfrm_tcp.sh PATTERN" runs the matching
# tests only.
tests=()
for spec in "${ALGOS[@]}"; do
	for fam in 4 6; do
		for mode in tunnel transport; do
			tests+=("esp_in_tcp.${spec%%|*}.ipv$fam.$mode|test_case $fam $mode ${spec#*|}")
		done
	done
done
tests+=(
	"esp_in_tcp.gcm-aes128-async.ipv4.tunnel|test_async 4 tunnel"
	"esp_in_tcp.gcm-aes128-async.ipv6.transport|test_async 6 transport"
	"wire_is_tcp_4500_only|test_wire"
	"tfc_padding|test_tfcpad"
	"tx_built_in_page.ipv4.tunnel|test_tx_in_page 4 tunnel"
	"tx_built_in_page.ipv6.transport|test_tx_in_page 6 transport"
	"tx_large_frames_in_skb|test_tx_large_frames"
	"tx_zerocopy_frags_released|test_zc_frags"
	"owned_socket_queue_charged|test_owned_queue"
	"sk_err_left_to_reader|test_sk_err_kept"
	"bound_to_device.ipv4|test_bound_dev 4"
	"bound_to_device.ipv6|test_bound_dev 6"
	"bad_algorithm_same_error|test_bad_algorithm"
	"spliced_file_not_decrypted_in_place|test_spliced_file"
	"gro_aggregates_every_frame_to_esp|test_gro"
	"plain_esp_alongside|test_plain 6"
	"esp_in_udp_alongside|test_udp"
	"reconnect_mapping_event|test_reconnect"
	"delete_sas_while_flowing|test_delete_while_flowing"
	"dropped_esp_freed|test_drops_freed 0"
	"dropped_esp_freed.async|test_drops_freed 1"
	"unload_refused_while_tcp_sa|test_unload"
)
espintcp_shell_main xfrm_tcp netns_setup tests "${1:-}"
