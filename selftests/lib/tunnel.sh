# SPDX-License-Identifier: GPL-2.0-only
# ESP tunnels between the namespaces of lib/netns.sh (source that first,
# and set $conn to tools/espintcp-conn): the RFC 8229 connection as an
# IKE daemon opens it, and SAs with policies for plain ESP, ESP-in-UDP
# or ESP-in-TCP.  Used by xfrm_tcp.sh and by the benchmark.

# Open the RFC 8229 connection: right listens on 4500, left connects
# (from port $2 if given), both bound to device $CONN_DEV if set.  Sets
# LPORT and RPORT.
open_conn() {
	local fam=$1 sport=${2:-} r l i

	if [ "$fam" = 6 ]; then r=$R6; else r=$R4; fi
	: > "$tmp/conn.r"
	: > "$tmp/conn.l"
	exec 7> >(exec ip netns exec right "$conn" ${CONN_DEV:+-d "$CONN_DEV"} \
		listen $r 4500 > "$tmp/conn.r")
	conn_pids=$!
	for i in $(seq 50); do
		in_right ss -Htln | grep -q ':4500 ' && break
		sleep 0.1
	done
	exec 8> >(exec ip netns exec left "$conn" ${CONN_DEV:+-d "$CONN_DEV"} \
		connect $r 4500 $sport > "$tmp/conn.l")
	conn_pids="$conn_pids $!"
	for i in $(seq 100); do
		[ -s "$tmp/conn.l" ] && [ -s "$tmp/conn.r" ] && break
		sleep 0.1
	done
	read -r _ _ LPORT _ _ RPORT < "$tmp/conn.l" || return 1
	[ -n "$LPORT" ] && [ "$RPORT" = 4500 ]
}

conn_pids=
close_conn() {
	exec 7>&- 8>&- 2>/dev/null
	# shellcheck disable=SC2086
	[ -n "$conn_pids" ] && wait $conn_pids 2>/dev/null
	conn_pids=
}

flush_xfrm() {
	local n

	for n in left right; do
		ip -n $n xfrm policy flush
		ip -n $n xfrm state flush
	done
}

# SAs and policies, host to host, for family $1, mode $2, algorithm $3
# (ip xfrm arguments), encapsulation $4 ("espintcp" with LPORT/RPORT,
# "espinudp", or "none").
tunnel_up() {
	local fam=$1 mode=$2 algo=$3 encap=$4 l r enc_lr enc_rl

	if [ "$fam" = 6 ]; then l=$L6 r=$R6; else l=$L4 r=$R4; fi
	case $encap in
	espintcp)
		enc_lr="encap espintcp $LPORT $RPORT 0.0.0.0"
		enc_rl="encap espintcp $RPORT $LPORT 0.0.0.0" ;;
	espinudp)
		enc_lr="encap espinudp 4500 4500 0.0.0.0"
		enc_rl=$enc_lr ;;
	*)	enc_lr= enc_rl= ;;
	esac
	for n in left right; do
		# shellcheck disable=SC2086
		ip -n $n xfrm state add src $l dst $r proto esp spi 0x1001 \
			reqid 1 mode $mode $algo $enc_lr || return 1
		# shellcheck disable=SC2086
		ip -n $n xfrm state add src $r dst $l proto esp spi 0x1002 \
			reqid 2 mode $mode $algo $enc_rl || return 1
	done
	ip -n left xfrm policy add src $l dst $r dir out priority 100 \
		tmpl src $l dst $r proto esp reqid 1 mode $mode
	ip -n left xfrm policy add src $r dst $l dir in priority 100 \
		tmpl src $r dst $l proto esp reqid 2 mode $mode
	ip -n right xfrm policy add src $r dst $l dir out priority 100 \
		tmpl src $r dst $l proto esp reqid 2 mode $mode
	ip -n right xfrm policy add src $l dst $r dir in priority 100 \
		tmpl src $l dst $r proto esp reqid 1 mode $mode
	# ESP-in-UDP arrives as UDP to port 4500: let it through the policy,
	# as an IKE daemon's bypass on its UDP socket does.
	if [ "$encap" = espinudp ]; then
		for n in left right; do
			for d in in out; do
				ip -n $n xfrm policy add src $l dst $r proto udp \
					dport 4500 dir $d priority 10
				ip -n $n xfrm policy add src $r dst $l proto udp \
					dport 4500 dir $d priority 10
			done
		done
	fi
}

# ESP-in-UDP needs a UDP socket with UDP_ENCAP on port 4500 on each
# side, as an IKE daemon keeps one: one per namespace for family $1,
# until udp_encap_stop.
udp_encap_pids=
udp_encap_start() {	# FAM
	local n a af=AF_INET py

	[ "$1" = 6 ] && af=AF_INET6
	py='import socket,sys,time
s=socket.socket(socket.'$af',socket.SOCK_DGRAM)
s.bind((sys.argv[1],4500))
s.setsockopt(socket.IPPROTO_UDP,100,2)
print("ready",flush=True)
time.sleep(3600)'
	for n in left right; do
		if [ "$1" = 6 ]; then
			a=$L6; [ $n = right ] && a=$R6
		else
			a=$L4; [ $n = right ] && a=$R4
		fi
		: > "$tmp/udp.$n"
		ip netns exec $n python3 -c "$py" $a > "$tmp/udp.$n" &
		udp_encap_pids="$udp_encap_pids $!"
	done
	for _ in $(seq 50); do
		[ -s "$tmp/udp.left" ] && [ -s "$tmp/udp.right" ] && return 0
		sleep 0.1
	done
	return 1
}

udp_encap_stop() {
	[ -n "$udp_encap_pids" ] || return 0
	# shellcheck disable=SC2086
	kill $udp_encap_pids 2>/dev/null
	# shellcheck disable=SC2086
	wait $udp_encap_pids 2>/dev/null
	udp_encap_pids=
}
