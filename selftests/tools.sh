#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The user-space tools against the real module: espintcp-tunnel keeps a
# tunnel up between the namespaces of lib/netns.sh (each end enters its
# namespace itself, --netns), reconnects, finds a dead peer, and removes
# exactly what it installed; bad input gets one message, a non-zero exit
# and nothing installed.
#
# usage: tools.sh [PATTERN]

cd "$(dirname "$0")" || exit 1
. lib/ktap.sh

top=$(cd .. && pwd)
ko=${ESPINTCP_KO:-$top/build/$(uname -r)/espintcp.ko}
tunnel=$top/tools/espintcp-tunnel
stat=$top/tools/espintcp-stat
xfer=$top/selftests/lib/xfer.py
tmp=$(mktemp -d)
MB10=$((10 * 1024 * 1024))
[ -n "${ESPINTCP_DEBUG:-}" ] && MB10=$((1024 * 1024))
. lib/netns.sh

AEAD='rfc4106(gcm(aes))'
K1=0x0102030405060708090a0b0c0d0e0f1011121314
K2=0x1112131415161718191a1b1c1d1e1f2021222324

tun_l='' tun_r=''
cleanup() {
	# shellcheck disable=SC2086
	[ -n "$tun_l$tun_r" ] && kill -TERM $tun_l $tun_r 2>/dev/null
	# shellcheck disable=SC2086
	[ -n "$tun_l$tun_r" ] && wait $tun_l $tun_r 2>/dev/null
	netns_cleanup
	rm -rf "$tmp"
}
trap cleanup EXIT

# Each end's options for family FAM; left is the originator, SPI 0x1001
# from left to right, 0x2001 back.
left_args() {	# FAM
	if [ "$1" = 6 ]; then echo --local $L6 --remote $R6
	else echo --local $L4 --remote $R4; fi
	echo --spi-out 0x1001 --key-out $K1 --spi-in 0x2001 --key-in $K2
}

right_args() {	# FAM
	if [ "$1" = 6 ]; then echo --local $R6 --remote $L6
	else echo --local $R4 --remote $L4; fi
	echo --spi-out 0x2001 --key-out $K2 --spi-in 0x1001 --key-in $K1
}

# Wait up to SECS for FILE to have COUNT lines matching REGEX.
wait_lines() {	# FILE REGEX COUNT SECS
	local i

	for i in $(seq $(($4 * 10))); do
		[ "$(grep -cE "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.1
	done
	return 1
}

# Both ends up, each with its SAs updated for the connection: the
# right end with the arguments up to "--", the left end with the rest.
tunnel_start_with() {	# RIGHT ARGS... -- LEFT ARGS...
	local right=()

	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		right+=("$1")
		shift
	done
	shift
	: > "$tmp/tun.r"
	: > "$tmp/tun.l"
	"$tunnel" "${right[@]}" 2> "$tmp/tun.r" &
	tun_r=$!
	wait_lines "$tmp/tun.r" '^espintcp-tunnel: listening' 1 10 ||
		{ ktap_diag "$(cat "$tmp/tun.r")"; return 1; }
	"$tunnel" "$@" 2> "$tmp/tun.l" &
	tun_l=$!
	wait_lines "$tmp/tun.l" 'updated SA' 2 10 &&
		wait_lines "$tmp/tun.r" 'updated SA' 2 10 ||
		{ ktap_diag "left: $(cat "$tmp/tun.l")"
		  ktap_diag "right: $(cat "$tmp/tun.r")"; return 1; }
}

# The same with AES-GCM and the usual SPIs and keys for family FAM;
# extra arguments go to both ends.
tunnel_start() {	# FAM [ARGS...]
	local fam=$1

	shift
	# shellcheck disable=SC2046
	tunnel_start_with listen --netns right --aead "$AEAD" \
		$(right_args "$fam") "$@" -- \
		connect --netns left --aead "$AEAD" $(left_args "$fam") "$@"
}

# Wait up to 10 s for a process to exit, then kill it.  Returns its
# exit status (137 when killed).
wait_exit() {	# PID
	local i

	for i in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && kill -KILL "$1"
	wait "$1"
}

# SIGTERM to both ends: each exits 0, and both namespaces are left
# without any SA or policy.
tunnel_stop() {
	local rc=0 st

	# shellcheck disable=SC2086
	[ -n "$tun_l$tun_r" ] && kill -TERM $tun_l $tun_r 2>/dev/null
	if [ -n "$tun_l" ]; then
		wait_exit $tun_l || { st=$?; ktap_fail_msg "left exited $st"; rc=1; }
	fi
	if [ -n "$tun_r" ]; then
		wait_exit $tun_r || { st=$?; ktap_fail_msg "right exited $st"; rc=1; }
	fi
	tun_l='' tun_r=''
	xfrm_empty left && xfrm_empty right || rc=1
	return $rc
}

xfrm_empty() {	# NS
	local s p

	s=$(ip -n "$1" xfrm state)
	p=$(ip -n "$1" xfrm policy)
	[ -z "$s$p" ] && return 0
	ktap_diag "$1: $s $p"
	ktap_fail_msg "SAs or policies left in $1"
}

# The TCP ports of left's SA to right: "SPORT DPORT".
sa_ports() {
	ip -n left xfrm state get src "$1" dst "$2" proto esp spi 0x1001 |
		sed -n 's/.*encap type espintcp sport \([0-9]*\) dport \([0-9]*\).*/\1 \2/p'
}

# Packets an SA has carried (ip -s xfrm state).
sa_packets() {	# NS SRC DST SPI
	ip -n "$1" -s xfrm state get src "$2" dst "$3" proto esp spi "$4" |
		awk '/lifetime current:/ { getline; sub(/\(packets\)/, "")
			print $2; exit }'
}

# espintcp-stat in NS: one socket, to or from port 4500, whose counter
# FIELD (esp_in or esp_out) is at least MIN and agrees with the growth
# of the namespace's total TOTAL since TOTAL0 (within 3 frames: the
# tunnel is quiet, but neighbour discovery may go through it between
# the reads); the text line shows the same figure.
stat_agrees() {	# NS FIELD MIN TOTAL TOTAL0
	local ns=$1 field=$2 min=$3 total n v text

	"$stat" -j -n "$ns" > "$tmp/stat.json" ||
		{ ktap_fail_msg "espintcp-stat -j -n $ns"; return 1; }
	"$stat" -n "$ns" > "$tmp/stat.txt" ||
		{ ktap_fail_msg "espintcp-stat -n $ns"; return 1; }
	total=$(($(stat_of "$ns" espintcp_stat "$4") - $5))
	read -r n v < <(python3 - "$tmp/stat.json" "$field" <<'PY'
import json, sys
socks = [s for s in json.load(open(sys.argv[1]))["sockets"]
         if 4500 in (s["lport"], s["rport"])]
print(len(socks), socks[0].get(sys.argv[2], -1) if socks else -1)
PY
	)
	# "esp in N (B) out N (B)": the figures after "in" and "out".
	text=$(grep '^ESTAB .*:4500 ' "$tmp/stat.txt" |
	       sed -n 's/.* esp in \([0-9]*\) ([0-9]* B) out \([0-9]*\) .*/\1 \2/p')
	if [ "$field" = esp_in ]; then text=${text% *}; else text=${text#* }; fi
	ktap_diag "$ns: $n socket(s), $field $v (text: $text); namespace total +$total"
	[ "$n" = 1 ] && [ "$v" -ge "$min" ] && [ "$text" = "$v" ] &&
		[ "$total" -ge "$v" ] && [ "$total" -le $((v + 3)) ] ||
		{ ktap_fail_msg "espintcp-stat in $ns disagrees"; return 1; }
}

# The tunnel carries a ping and a checksummed 10 MB; the SAs carry the
# connection's ports; espintcp-stat shows each end's socket with at least
# the packets the SAs carried, as the namespace totals do; SIGTERM
# leaves nothing behind.
test_tunnel() {	# FAM
	local fam=$1 l=$L4 r=$R4 rc=0 ports conn out0 in0 sent

	[ "$fam" = 6 ] && l=$L6 r=$R6
	out0=$(stat_of left espintcp_stat EspOutFrames)
	in0=$(stat_of right espintcp_stat EspInFrames)
	tunnel_start "$fam" || { ktap_fail_msg "the tunnel did not come up"
				 tunnel_stop; return 1; }
	in_left ping -c 2 -W 3 $r > "$tmp/ping" ||
		{ ktap_diag "$(cat "$tmp/ping")"; ktap_fail_msg "ping"; rc=1; }
	netns_transfer $r $MB10 || rc=1
	sent=$(sa_packets left $l $r 0x1001)
	ktap_diag "the SA from left carried ${sent:-no} packets"
	[ "${sent:-0}" -ge $((MB10 / 2048)) ] ||
		{ ktap_fail_msg "too few packets"; rc=1; }
	stat_agrees left esp_out "${sent:-1}" EspOutFrames "$out0" || rc=1
	stat_agrees right esp_in "${sent:-1}" EspInFrames "$in0" || rc=1
	ports=$(sa_ports $l $r)
	conn=$(in_left ss -Htn state established "( dport = :4500 )" |
	       awk '{ n = split($3, a, ":"); print a[n] }')
	ktap_diag "SA ports: $ports, connection from port $conn"
	[ "$ports" = "$conn 4500" ] ||
		{ ktap_fail_msg "the SA does not carry the connection's ports"
		  rc=1; }
	tunnel_stop || rc=1
	return $rc
}

# The connection killed (ss -K): the originator connects again, both
# update their SAs to the new port, and traffic resumes within 20 s.
test_reconnect() {
	local rc=0 old new i

	tunnel_start 4 || { ktap_fail_msg "the tunnel did not come up"
			    tunnel_stop; return 1; }
	old=$(sa_ports $L4 $R4)
	in_left ss -Hn -K dst $R4 dport = :4500 > /dev/null ||
		{ ktap_fail_msg "ss -K"; tunnel_stop; return 1; }
	wait_lines "$tmp/tun.l" 'updated SA' 4 20 &&
		wait_lines "$tmp/tun.r" 'updated SA' 4 20 ||
		{ ktap_diag "left: $(cat "$tmp/tun.l")"
		  ktap_fail_msg "no new connection"; rc=1; }
	new=$(sa_ports $L4 $R4)
	ktap_diag "SA ports before: $old, after: $new"
	[ -n "$new" ] && [ "$new" != "$old" ] ||
		{ ktap_fail_msg "the SA kept the old port"; rc=1; }
	for i in $(seq 20); do
		in_left ping -c 1 -W 1 $R4 > /dev/null && break
	done
	ktap_diag "ping through after $i attempts"
	in_left ping -c 1 -W 1 $R4 > /dev/null ||
		{ ktap_fail_msg "no traffic after the reconnection"; rc=1; }
	tunnel_stop || rc=1
	return $rc
}

# Liveness: while the responder runs, its echo replies keep the
# connection (6 s, twice --dead), and the echoes show as IKE messages in
# espintcp-stat; with the responder stopped (SIGSTOP), the originator
# finds the peer dead after --dead seconds and connects again; once the
# responder runs again, it takes the new connection and traffic flows.
test_dead_peer() {
	local rc=0 ike

	tunnel_start 4 --echo 1 --dead 3 ||
		{ ktap_fail_msg "the tunnel did not come up"; tunnel_stop
		  return 1; }
	sleep 6
	ike=$("$stat" -j -n left | python3 -c 'import json, sys
s = json.load(sys.stdin)["sockets"]
print(s[0]["ike_out"], s[0]["ike_in"] if s else "none")' 2>&1)
	ktap_diag "left's IKE messages out and in after 6 s: $ike"
	grep -q 'the peer is dead' "$tmp/tun.l" &&
		{ ktap_diag "$(cat "$tmp/tun.l")"
		  ktap_fail_msg "a live peer was found dead"; rc=1; }
	[ "${ike%% *}" -ge 5 ] 2>/dev/null && [ "${ike#* }" -ge 5 ] ||
		{ ktap_fail_msg "no echoes both ways"; rc=1; }
	kill -STOP $tun_r
	wait_lines "$tmp/tun.l" 'the peer is dead' 1 15 ||
		{ ktap_fail_msg "the dead peer went unnoticed"; rc=1; }
	wait_lines "$tmp/tun.l" 'connected to' 2 15 ||
		{ ktap_fail_msg "no new connection"; rc=1; }
	kill -CONT $tun_r
	wait_lines "$tmp/tun.r" 'updated SA' 4 15 ||
		{ ktap_diag "right: $(cat "$tmp/tun.r")"
		  ktap_fail_msg "the responder did not take the new connection"
		  rc=1; }
	in_left ping -c 2 -W 3 $R4 > /dev/null ||
		{ ktap_fail_msg "no traffic after the reconnection"; rc=1; }
	tunnel_stop || rc=1
	return $rc
}

# Transport mode, AES-CBC with HMAC-SHA256, ESN and a 128-packet replay
# window, everything (the role too) from configuration files.
test_config_transport_esn() {
	local rc=0

	cat > "$tmp/right.conf" <<CONF
# right: the responder
role listen
netns right
local $R4
remote = $L4
mode transport
enc cbc(aes)
auth hmac(sha256)
trunc 128
esn
replay-window 128
spi-out 0x2001
key-out 0x1112131415161718191a1b1c1d1e1f20
auth-key-out 0x2122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f40
spi-in 0x1001
key-in 0x0102030405060708090a0b0c0d0e0f10
auth-key-in 0x4142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60
CONF
	sed -e 's/^role listen/role connect/' -e 's/^netns right/netns left/' \
	    -e "s/^local .*/local $L4/" -e "s/^remote = .*/remote $R4/" \
	    -e 's/-out /-tmp /' -e 's/-in /-out /' -e 's/-tmp /-in /' \
	    "$tmp/right.conf" > "$tmp/left.conf"
	tunnel_start_with --config "$tmp/right.conf" -- \
		--config "$tmp/left.conf" ||
		{ ktap_fail_msg "the tunnel did not come up"; tunnel_stop
		  return 1; }
	ip -n left xfrm state | grep -q 'mode transport' &&
		ip -n left xfrm state | grep -q 'flag esn' &&
		ip -n left xfrm state | grep -qE 'replay[-_]window 128' ||
		{ ktap_diag "$(ip -n left xfrm state)"
		  ktap_fail_msg "the SA is not as configured"; rc=1; }
	in_left ping -c 2 -W 3 $R4 > /dev/null ||
		{ ktap_fail_msg "ping"; rc=1; }
	netns_transfer $R4 $((MB10 / 10)) || rc=1
	tunnel_stop || rc=1
	return $rc
}

# The responder's port is taken: one message, exit 1, nothing installed.
test_port_taken() {
	local rc=0 out st pid

	ip netns exec right python3 -c 'import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 4500)); s.listen(1)
time.sleep(30)' $R4 &
	pid=$!
	for _ in $(seq 50); do
		in_right ss -Htln | grep -q ':4500 ' && break
		sleep 0.1
	done
	# shellcheck disable=SC2046
	out=$(timeout 20 "$tunnel" listen --netns right --aead "$AEAD" \
		$(right_args 4) 2>&1)
	st=$?
	kill $pid
	wait $pid 2>/dev/null
	ktap_diag "exit $st: $out"
	[ $st = 1 ] || { ktap_fail_msg "exit status $st"; rc=1; }
	grep -q "listening on $R4 port 4500: Address already in use" \
		<<<"$out" || { ktap_fail_msg "no message"; rc=1; }
	xfrm_empty right || rc=1
	return $rc
}

# A policy for the same selector exists: the tool says so in one line,
# exits 1 and removes its SAs; the existing policy stays.
test_policy_exists() {
	local rc=0 out st

	ip -n left xfrm policy add src $L4 dst $R4 dir out \
		tmpl src $L4 dst $R4 proto esp mode tunnel ||
		{ ktap_fail_msg "setup"; return 1; }
	# shellcheck disable=SC2046
	out=$("$tunnel" connect --netns left --aead "$AEAD" \
		$(left_args 4) 2>&1)
	st=$?
	ktap_diag "exit $st: $out"
	[ $st = 1 ] || { ktap_fail_msg "exit status $st"; rc=1; }
	[ "$out" = "espintcp-tunnel: a policy $L4 -> $R4 (out) already exists" ] ||
		{ ktap_fail_msg "not the one message expected"; rc=1; }
	[ -z "$(ip -n left xfrm state)" ] &&
		[ "$(ip -n left xfrm policy | grep -c '^src')" = 1 ] ||
		{ ktap_fail_msg "the tool left SAs or policies"; rc=1; }
	ip -n left xfrm policy flush
	return $rc
}

# A bad input: exit status non-zero, MESSAGE in the output, nothing
# installed in left.
bad_input() {	# MESSAGE ARGS...
	local msg=$1 out st

	shift
	out=$("$tunnel" "$@" 2>&1)
	st=$?
	ktap_diag "exit $st: $(head -n 3 <<<"$out")"
	[ $st != 0 ] || { ktap_fail_msg "exit status 0"; return 1; }
	grep -qF -- "$msg" <<<"$out" ||
		{ ktap_fail_msg "no '$msg'"; return 1; }
	[ "$(grep -c . <<<"$out")" -le 2 ] ||
		{ ktap_fail_msg "more than one message"; return 1; }
	xfrm_empty left
}

test_bad_algorithm() {
	# shellcheck disable=SC2046
	bad_input "unknown AEAD algorithm" connect --netns left \
		--aead 'gcm(foo)' $(left_args 4)
}

test_bad_key_length() {
	# shellcheck disable=SC2046
	bad_input "takes a key of 20, 28 or 36 bytes, not 16" connect \
		--netns left --aead "$AEAD" $(left_args 4) \
		--key-in 0x0102030405060708090a0b0c0d0e0f10
}

test_spi_zero() {
	# shellcheck disable=SC2046
	bad_input "SPI 0 is reserved" connect --netns left --aead "$AEAD" \
		$(left_args 4) --spi-out 0
}

test_family_mismatch() {
	bad_input "address family mismatch" connect --netns left \
		--aead "$AEAD" --local $L4 --remote $R6 --spi-out 0x1001 \
		--key-out $K1 --spi-in 0x2001 --key-in $K2
}

# An SA with the same SPI exists: the tool says so, removes the SA it
# had added and adds no policy; the existing SA stays.
test_spi_in_use() {
	local rc=0 out st n

	ip -n left xfrm state add src $R4 dst $L4 proto esp spi 0x2001 \
		mode tunnel aead "$AEAD" $K2 128 ||
		{ ktap_fail_msg "setup"; return 1; }
	# shellcheck disable=SC2046
	out=$("$tunnel" connect --netns left --aead "$AEAD" \
		$(left_args 4) 2>&1)
	st=$?
	ktap_diag "exit $st: $out"
	[ $st != 0 ] || { ktap_fail_msg "exit status 0"; rc=1; }
	[ "$out" = "espintcp-tunnel: SPI 0x00002001 to $L4 is already in use" ] ||
		{ ktap_fail_msg "not the one message expected"; rc=1; }
	n=$(ip -n left xfrm state | grep -c '^src')
	[ "$n" = 1 ] && [ -z "$(ip -n left xfrm policy)" ] ||
		{ ktap_fail_msg "the tool left SAs or policies"; rc=1; }
	ip -n left xfrm state flush
	return $rc
}

# The responder's first connection does not start with "IKETCP": it
# says so, exits non-zero and leaves nothing installed.
test_prefix_mismatch() {
	local rc=0 st

	# shellcheck disable=SC2046
	"$tunnel" listen --netns right --aead "$AEAD" $(right_args 4) \
		2> "$tmp/tun.r" &
	tun_r=$!
	wait_lines "$tmp/tun.r" '^espintcp-tunnel: listening' 1 10 ||
		{ ktap_fail_msg "the responder did not listen"; rc=1; }
	in_left python3 -c 'import socket, sys
s = socket.create_connection((sys.argv[1], 4500), timeout=5)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
s.recv(1)' $R4 2>/dev/null
	wait $tun_r
	st=$?
	tun_r=
	ktap_diag "exit $st: $(tail -n 2 "$tmp/tun.r")"
	[ $st != 0 ] || { ktap_fail_msg "exit status 0"; rc=1; }
	grep -q "stream prefix mismatch" "$tmp/tun.r" ||
		{ ktap_fail_msg "no message"; rc=1; }
	xfrm_empty right || rc=1
	return $rc
}

# espintcp-stat without the module, or without sockets: one line, exit 0;
# -s prints the namespace's totals.
test_stat_empty() {
	local rc=0 out

	out=$("$stat" -n left) ||
		{ ktap_fail_msg "exit status $?"; rc=1; }
	[ "$out" = "no espintcp sockets" ] ||
		{ ktap_fail_msg "'$out'"; rc=1; }
	"$stat" -s -n left | grep -q '^EspOutFrames ' ||
		{ ktap_fail_msg "no totals"; rc=1; }
	espintcp_rmmod || { ktap_fail_msg "cannot unload espintcp"; return 1; }
	out=$("$stat" -n left) || { ktap_fail_msg "exit status $?"; rc=1; }
	ktap_diag "without the module: $out"
	grep -q "not loaded" <<<"$out" || { ktap_fail_msg "'$out'"; rc=1; }
	espintcp_insmod "$ko" || { ktap_fail_msg "cannot load $ko"; rc=1; }
	return $rc
}

# Without the module, one line says how to load it.
test_module_not_loaded() {
	local rc=0

	espintcp_rmmod || { ktap_fail_msg "cannot unload espintcp"; return 1; }
	# shellcheck disable=SC2046
	bad_input "load it with 'modprobe espintcp'" connect --netns left \
		--aead "$AEAD" $(left_args 4) || rc=1
	espintcp_insmod "$ko" || { ktap_fail_msg "cannot load $ko"; rc=1; }
	return $rc
}

tests=(
	"tunnel.ipv4|test_tunnel 4"
	"tunnel.ipv6|test_tunnel 6"
	"reconnect_after_ss_kill|test_reconnect"
	"dead_peer_reconnected|test_dead_peer"
	"bad.unknown_algorithm|test_bad_algorithm"
	"bad.key_length|test_bad_key_length"
	"bad.spi_zero|test_spi_zero"
	"bad.family_mismatch|test_family_mismatch"
	"config_transport_cbc_esn|test_config_transport_esn"
	"bad.spi_in_use|test_spi_in_use"
	"bad.policy_exists|test_policy_exists"
	"bad.port_taken|test_port_taken"
	"bad.prefix_mismatch|test_prefix_mismatch"
	"bad.module_not_loaded|test_module_not_loaded"
	"stat.no_sockets_or_module|test_stat_empty"
)
espintcp_shell_main tools netns_setup tests "${1:-}"
