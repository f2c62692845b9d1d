#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The benchmark, inside the test VM (make bench starts it there): two
# network namespaces joined by veth, and for each mode (no IPsec, plain
# ESP, ESP-in-UDP, ESP-in-TCP), cipher (AES-GCM 128, ChaCha20-Poly1305)
# and family, all in tunnel mode:
#   - TCP throughput (iperf3), 1 and 4 streams, BENCH_REPS times;
#   - UDP at a fixed rate (BENCH_UDP_RATE): loss and jitter;
#   - TCP request/response (bench/tcp_rr): transactions per second, mean
#     and 99th percentile round trip;
#   - with AES-GCM: 1-stream TCP throughput again with netem dropping
#     BENCH_LOSSES percent of what left sends;
#   - with IPsec: whether ESP packets leave in sequence order (a capture
#     during a transfer of BENCH_ORDER_BYTES; bench/esp_order.py).
# With BENCH_PROFILE=1 it measures nothing: for each configuration, perf
# samples the whole guest (cpu-clock, no PMU under TCG) during a 1-stream
# TCP transfer, and the hottest symbols are printed after "@profile ".
#
# Each measurement is one JSON line on standard output, after "@bench "
# (the VM's console is the only way out); bench/report.py reads them.
# ESP-in-TCP is whatever espintcp the kernel has: ours (loaded from
# build/RELEASE/espintcp.ko, or each of BENCH_VARIANTS in turn) or
# upstream's built in (make bench-parity).
#
# usage: bench.sh
# env:   BENCH_SECONDS (10), BENCH_REPS (3), BENCH_FAMILIES ("4 6"),
#        BENCH_MODES ("none esp udp tcp"), BENCH_UDP_RATE (50M),
#        BENCH_LOSSES ("1 3"), BENCH_ORDER_BYTES (20M), BENCH_PROFILE,
#        BENCH_VARIANTS ("LABEL=MODULE.ko ..."),
#        BENCH_CIPHERS ("gcm-aes128 chacha20poly1305")

cd "$(dirname "$0")/.." || exit 1
top=$(pwd)
secs=${BENCH_SECONDS:-10}
reps=${BENCH_REPS:-3}
families=${BENCH_FAMILIES:-4 6}
modes=${BENCH_MODES:-none esp udp tcp}
udp_rate=${BENCH_UDP_RATE:-50M}
losses=${BENCH_LOSSES:-1 3}
order_bytes=${BENCH_ORDER_BYTES:-20M}
# No measurement may hang the VM: each gets its time and a minute more.
tmo=$((secs + 60))
conn=$top/tools/espintcp-conn
rr=$top/bench/tcp_rr
xfer=$top/selftests/lib/xfer.py
tmp=$(mktemp -d)
. selftests/lib/netns.sh
. selftests/lib/tunnel.sh

CIPHERS=(
	"gcm-aes128|aead rfc4106(gcm(aes)) 0x0102030405060708090a0b0c0d0e0f1011121314 128"
	"chacha20poly1305|aead rfc7539esp(chacha20,poly1305) 0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324 128"
)

srv_pids=
teardown() {
	# shellcheck disable=SC2086
	[ -n "$srv_pids" ] && kill $srv_pids 2>/dev/null
	# shellcheck disable=SC2086
	[ -n "$srv_pids" ] && wait $srv_pids 2>/dev/null
	srv_pids=
	close_conn
	udp_encap_stop
	netns_cleanup
}
trap 'teardown; rm -rf "$tmp"' EXIT

# The implementations to measure, LABEL=MODULE each: upstream's built in,
# or BENCH_VARIANTS, or ours from build/RELEASE/.  With more than one,
# every configuration is measured with each in turn (make bench-compare),
# so that they meet the same conditions.
if grep -qw espintcp /proc/sys/net/ipv4/tcp_available_ulp &&
   [ ! -e /sys/module/espintcp/refcnt ]; then
	variants=(upstream=)
elif [ -n "${BENCH_VARIANTS:-}" ]; then
	read -ra variants <<< "$BENCH_VARIANTS"
else
	variants=("ours=$top/build/$(uname -r)/espintcp.ko")
fi
for v in "${variants[@]}"; do
	[ -z "${v#*=}" ] || [ -f "${v#*=}" ] ||
		{ echo "bench: no module ${v#*=}" >&2; exit 1; }
done
echo "bench: $(uname -r), ESP-in-TCP by ${variants[*]%%=*} espintcp," \
	"${secs} s per run, $reps repetitions"

# Have the module of variant LABEL=KO loaded (nothing for upstream's).
loaded=
use_variant() {	# LABEL=KO
	local ko=${1#*=}

	impl=${1%%=*}
	[ -z "$ko" ] || [ "$ko" = "$loaded" ] && return 0
	# The last configuration's SAs hold the module until the XFRM
	# garbage collector frees them, a moment after their namespace.
	if [ -e /sys/module/espintcp ]; then
		espintcp_rmmod || return 1
	fi
	loaded=
	espintcp_insmod "$ko" || return 1
	loaded=$ko
}

# Fields every record of the current configuration carries.
ctx=

emit() {	# JSON members
	echo "@bench {\"kernel\": \"$(uname -r)\", \"impl\": \"$impl\", $ctx, $1}"
	records=$((records + 1))
}
records=0

# Bring up one configuration; sets $raddr.
setup() {	# MODE CIPHER-ENTRY FAM
	local mode=$1 algo=${2#*|} fam=$3

	netns_setup || return 1
	if [ "$fam" = 6 ]; then raddr=$R6; else raddr=$R4; fi
	case $mode in
	esp)	tunnel_up "$fam" tunnel "$algo" none ;;
	udp)	udp_encap_start "$fam" &&
		tunnel_up "$fam" tunnel "$algo" espinudp ;;
	tcp)	open_conn "$fam" && tunnel_up "$fam" tunnel "$algo" espintcp ;;
	esac || return 1
	in_left ping -c 2 -W 5 "$raddr" > /dev/null || return 1
	# Background the programs themselves, not shell functions, so that
	# kill reaches them.
	ip netns exec right iperf3 -s -B "$raddr" > /dev/null 2>&1 &
	srv_pids=$!
	for _ in $(seq 50); do
		in_right ss -Htln | grep -q ':5201 ' && return 0
		sleep 0.1
	done
	return 1
}

# The value at a dotted path of iperf3's JSON output.
jget() {	# FILE PATH...
	python3 - "$@" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for path in sys.argv[2:]:
    v = d
    for k in path.split("."):
        v = v[k]
    print(v)
EOF
}

tput() {	# STREAMS LOSS REP
	local r

	in_left timeout -k 5 $tmo iperf3 -c "$raddr" -t "$secs" -O 2 \
		--connect-timeout 5000 -P "$1" -J > "$tmp/ip.json" \
		2> "$tmp/ip.err" &&
		r=$(jget "$tmp/ip.json" end.sum_received.bits_per_second \
			end.sum_sent.retransmits | tr '\n' ' ') ||
		{ echo "bench: iperf3 failed: $(cat "$tmp/ip.err")" >&2; return 1; }
	set -- "$@" $r
	emit "\"test\": \"tput\", \"streams\": $1, \"loss\": $2, \"rep\": $3, \"mbps\": $(python3 -c "print(round($4 / 1e6, 2))"), \"retransmits\": $5"
}

# Do ESP packets of one SA leave in order?  A capture of what left sends
# during a 1-stream transfer of BENCH_ORDER_BYTES (whole packets: the
# ESP-in-TCP stream is reassembled), read by bench/esp_order.py; and the
# inner TCP's retransmissions in that transfer.
order() {
	local pid r retrans drops

	ip netns exec left tcpdump -i veth0 -Q out -n -U -B 65536 -s 0 \
		-w "$tmp/order.pcap" 2> "$tmp/tcpdump.err" &
	pid=$!
	sleep 1
	in_left timeout -k 5 $tmo iperf3 -c "$raddr" -n "$order_bytes" \
		--connect-timeout 5000 -J > "$tmp/ip.json" \
		2> "$tmp/ip.err" &&
		retrans=$(jget "$tmp/ip.json" end.sum_sent.retransmits) ||
		{ kill -INT $pid; wait $pid
		  echo "bench: iperf3 failed: $(cat "$tmp/ip.err")" >&2
		  return 1; }
	sleep 0.5
	kill -INT $pid
	wait $pid
	drops=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' \
		"$tmp/tcpdump.err")
	r=$(python3 bench/esp_order.py "$tmp/order.pcap") ||
		{ rm -f "$tmp/order.pcap"; return 1; }
	rm -f "$tmp/order.pcap"
	r=${r#\{}
	emit "\"test\": \"order\", \"bytes\": \"$order_bytes\", \"retransmits\": $retrans, \"capture_drops\": ${drops:-0}, ${r%\}}"
}

udp() {
	local r

	in_left timeout -k 5 $tmo iperf3 -c "$raddr" -u -b "$udp_rate" \
		-l 1200 -t "$secs" --connect-timeout 5000 -J \
		> "$tmp/ip.json" 2> "$tmp/ip.err" &&
		r=$(jget "$tmp/ip.json" end.sum.lost_percent end.sum.jitter_ms \
			end.sum.packets end.sum.lost_packets | tr '\n' ' ') ||
		{ echo "bench: iperf3 -u failed: $(cat "$tmp/ip.err")" >&2; return 1; }
	# shellcheck disable=SC2086
	set -- $r
	emit "\"test\": \"udp\", \"rate\": \"$udp_rate\", \"lost_percent\": $1, \"jitter_ms\": $2, \"packets\": $3, \"lost_packets\": $4"
}

rr() {
	local port=$((7000 + RANDOM % 1000)) r

	: > "$tmp/rr.srv"
	ip netns exec right timeout -k 5 $tmo "$rr" server "$raddr" $port \
		> "$tmp/rr.srv" &
	local pid=$!
	wait_listening "$tmp/rr.srv"
	r=$(in_left timeout -k 5 $tmo "$rr" client "$raddr" $port "$secs")
	wait $pid
	[ -n "$r" ] || { echo "bench: tcp_rr failed" >&2; return 1; }
	# tcp_rr prints a whole object: its members join the record.
	r=${r#\{}
	emit "\"test\": \"rr\", ${r%\}}"
}

# Bytes and packets left's outbound SA has carried: none is a failure.
sa_used() {
	local l=$L4 r

	[ "$fam" = 6 ] && l=$L6
	r=$(ip -n left -s xfrm state get src "$l" dst "$raddr" proto esp \
		spi 0x1001 | awk '/lifetime current:/ { getline
			sub(/\(bytes\),/, ""); sub(/\(packets\)/, "")
			print $1, $2; exit }')
	# shellcheck disable=SC2086
	set -- $r
	emit "\"test\": \"sa\", \"bytes\": ${1:-0}, \"packets\": ${2:-0}"
	[ "${1:-0}" -gt 0 ] ||
		{ echo "bench: the SA carried nothing" >&2; return 1; }
}

# Where the guest spends its time during a 1-stream transfer: perf
# samples every CPU of the guest (cpu-clock: there is no PMU under TCG)
# while iperf3 runs, after a short warm-up transfer.  One record with
# the bytes the transfer moved, the sample count, the samples of every
# symbol at 0.05% or more, and whose the locks and copies are
# (bench/perf_fold.py): bench/profile.py turns the samples into a cost
# per megabyte, which compares modes whatever their throughput.
profile() {
	local pid r prof

	# The warm-up runs perf too: its first run in a boot loses most of
	# its samples.
	in_left timeout -k 5 $tmo iperf3 -c "$raddr" -t 3 \
		--connect-timeout 5000 > /dev/null 2>&1 &
	pid=$!
	perf record -q -a -e cpu-clock -o /dev/null -- sleep 2 \
		> /dev/null 2>&1
	wait $pid || { echo "bench: warm-up transfer failed" >&2; return 1; }
	in_left timeout -k 5 $tmo iperf3 -c "$raddr" -t $((secs + 2)) \
		--connect-timeout 5000 -J > "$tmp/ip.json" 2> "$tmp/ip.err" &
	pid=$!
	sleep 1
	perf record -q -a -g -e cpu-clock -o "$tmp/perf.data" -- sleep "$secs" \
		> /dev/null 2>&1 || { wait $pid; return 1; }
	wait $pid ||
		{ echo "bench: iperf3 failed: $(cat "$tmp/ip.err")" >&2; return 1; }
	r=$(jget "$tmp/ip.json" end.sum_received.bytes \
		end.sum_received.seconds | tr '\n' ' ')
	prof=$(perf script -i "$tmp/perf.data" -F comm,ip,sym,dso 2> /dev/null |
		python3 bench/perf_fold.py) ||
		{ echo "bench: perf script failed" >&2; return 1; }
	rm -f "$tmp/perf.data"
	# shellcheck disable=SC2086
	set -- $r
	prof=${prof#\{}
	emit "\"test\": \"profile\", \"bytes\": $1, \"seconds\": $2, \"sampled_seconds\": $secs, \"cpus\": $(nproc), ${prof%\}}"
}

# Every measurement of one configuration ($fam, $mode, $entry, $cipher),
# set up already; the number of those that failed is added to $failed.
measure() {
	local streams rep loss

	if [ -n "${BENCH_PROFILE:-}" ]; then
		profile || failed=$((failed + 1))
		return
	fi
	for streams in 1 4; do
		for rep in $(seq "$reps"); do
			tput $streams 0 "$rep" || failed=$((failed + 1))
		done
	done
	udp || failed=$((failed + 1))
	rr || failed=$((failed + 1))
	if [ "$mode" != none ]; then
		order || failed=$((failed + 1))
	fi
	if [ "$cipher" = gcm-aes128 ] || [ "$mode" = none ]; then
		# netem drops whole skbs: with TSO/GSO a drop would take up
		# to 64 KB at once in the modes where TCP is outermost, and
		# one MTU-sized packet in the ESP modes.
		ip netns exec left ethtool -K veth0 tso off gso off
		for loss in $losses; do
			tc -n left qdisc add dev veth0 root netem \
				loss "$loss%" ||
				{ failed=$((failed + 1)); continue; }
			for rep in $(seq "$reps"); do
				tput 1 "$loss" "$rep" || failed=$((failed + 1))
			done
			tc -n left qdisc del dev veth0 root
		done
		ip netns exec left ethtool -K veth0 tso on gso on
	fi
	# Did the traffic use the SA (and not leave in the clear past
	# failed policies)?
	if [ "$mode" != none ]; then
		sa_used || failed=$((failed + 1))
	fi
	# Our module's counters for the connection (left).
	[ "$mode" = tcp ] && [ "$impl" != upstream ] &&
		emit "\"test\": \"counters\", \"espintcp_stat\": \"$(in_left sh -c "tr -s ' \t\n' ' ' < /proc/net/espintcp_stat")\""
}

failed=0
for fam in $families; do
	for mode in $modes; do
		entries=()
		for entry in "${CIPHERS[@]}"; do
			[[ " ${BENCH_CIPHERS:-${entry%%|*}} " == *" ${entry%%|*} "* ]] &&
				entries+=("$entry")
		done
		[ "$mode" = none ] && entries=("none|")
		for entry in "${entries[@]}"; do
			cipher=${entry%%|*}
			ctx="\"mode\": \"$mode\", \"cipher\": \"$cipher\", \"family\": $fam"
			for variant in "${variants[@]}"; do
				if ! use_variant "$variant"; then
					echo "bench: cannot load ${variant#*=}" >&2
					failed=$((failed + 1))
					continue
				fi
				echo "bench: IPv$fam $mode $cipher${variants[1]:+ ($impl)}"
				if setup "$mode" "$entry" "$fam"; then
					measure
				else
					echo "bench: IPv$fam $mode $cipher: setup failed" >&2
					failed=$((failed + 1))
				fi
				teardown
			done
		done
	done
done
ctx='"mode": "-", "cipher": "-", "family": 0'
emit "\"test\": \"summary\", \"failed\": $failed"
echo "bench: $records records, $failed failures"
[ "$failed" = 0 ]
