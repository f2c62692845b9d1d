# SPDX-License-Identifier: GPL-2.0-only
# Two network namespaces for the shell tests, "left" and "right", joined
# by veth0: 198.51.100.1/24 and 2001:db8::1/64 in left, .2 and ::2 in
# right (documentation prefixes, which exist only inside the test VM).
# Source it after setting $tmp (a scratch directory) and $xfer (the path
# of lib/xfer.py).

. "$(dirname "${BASH_SOURCE[0]}")/module.sh"

L4=198.51.100.1 R4=198.51.100.2
L6=2001:db8::1 R6=2001:db8::2

netns_setup() {
	ip netns add left && ip netns add right || return 1
	ip link add veth0 netns left type veth peer name veth0 netns right
	ip -n left addr add $L4/24 dev veth0
	ip -n right addr add $R4/24 dev veth0
	ip -n left addr add $L6/64 dev veth0 nodad
	ip -n right addr add $R6/64 dev veth0 nodad
	for n in left right; do
		ip -n $n link set lo up
		ip -n $n link set veth0 up
	done
}

netns_cleanup() {
	ip netns del left 2>/dev/null
	ip netns del right 2>/dev/null
}

in_left() { ip netns exec left "$@"; }
in_right() { ip netns exec right "$@"; }

stat_of() {	# NS FILE NAME: a counter of /proc/net/FILE in NS
	ip netns exec "$1" awk -v k="$3" '$1 == k { print $2 }' "/proc/net/$2" 2>/dev/null
}

# Wait up to 5 s for a server that prints "listening" into FILE.
wait_listening() {	# FILE
	for _ in $(seq 50); do
		grep -q listening "$1" && return 0
		sleep 0.1
	done
	return 1
}

# A checksummed TCP transfer of BYTES from left to ADDR:PORT in right,
# spread over SECONDS if given.
netns_transfer() {	# ADDR BYTES [SECONDS]
	local addr=$1 bytes=$2 secs=${3:-} port=$((5000 + RANDOM % 1000)) got want

	ip netns exec right timeout 180 python3 "$xfer" server "$addr" $port \
		> "$tmp/srv" &
	local srv=$!
	wait_listening "$tmp/srv"
	# shellcheck disable=SC2086
	want=$(in_left timeout 180 python3 "$xfer" client "$addr" $port "$bytes" $secs)
	wait $srv
	got=$(tail -n 1 "$tmp/srv")
	[ -n "$want" ] && [ "$got" = "$want" ] ||
		ktap_fail_msg "transfer: sent '$want', received '$got'"
}

# The shell tests' main program: TESTS names an array of "name|function
# args" entries; with PATTERN (a glob), only the names that match run.
# The tests are about the module, so with espintcp built into the kernel
# they skip (one result, NAME), unless this is the parity run against
# upstream's espintcp and the script has set espintcp_shell_parity=yes.
# Else the module is loaded if it is not.  SETUP runs first.
espintcp_shell_main() {	# NAME SETUP TESTS [PATTERN]
	local -n tests_=$3
	local pat=${4:-} t selected=()

	if [ -n "${ESPINTCP_AUTOLOAD:-}" ]; then
		:	# the tests' own attach loads it (dkms_load.sh)
	elif ! grep -qw espintcp /proc/sys/net/ipv4/tcp_available_ulp; then
		espintcp_insmod "$ko" || { echo "Bail out! insmod $ko"; exit 1; }
	elif [ ! -e /sys/module/espintcp/refcnt ] &&
	     ! { [ -n "${ESPINTCP_PARITY:-}" ] &&
		 [ "${espintcp_shell_parity:-}" = yes ]; }; then
		ktap_plan 1
		ktap_run "$1" ktap_skip_msg "espintcp is built into this kernel"
		ktap_finish
	fi
	"$2" || { echo "Bail out! $2"; exit 1; }
	for t in "${tests_[@]}"; do
		[[ -z $pat || ${t%%|*} == $pat ]] && selected+=("$t")
	done
	ktap_plan ${#selected[@]}
	for t in "${selected[@]}"; do
		# shellcheck disable=SC2086
		ktap_run "${t%%|*}" ${t#*|}
	done
	ktap_finish
}


# Capture what both ends send on veth0 (-Q out: that is the wire;
# inbound captures would also show the packets XFRM decrypts and
# re-injects there), from wire_start to wire_stop; wire_count FILTER
# counts the packets of both captures that match a pcap filter.
wire_pids=
wire_start() {
	ip netns exec left tcpdump -i veth0 -Q out -n -U -w "$tmp/cap.l" 2>/dev/null &
	wire_pids=$!
	ip netns exec right tcpdump -i veth0 -Q out -n -U -w "$tmp/cap.r" 2>/dev/null &
	wire_pids="$wire_pids $!"
	sleep 1
}

wire_stop() {
	sleep 0.5
	# shellcheck disable=SC2086
	kill -INT $wire_pids
	# shellcheck disable=SC2086
	wait $wire_pids 2>/dev/null
	wire_pids=
}

wire_count() {	# FILTER
	cat <(tcpdump -n -r "$tmp/cap.l" "$1" 2>/dev/null) \
	    <(tcpdump -n -r "$tmp/cap.r" "$1" 2>/dev/null) | wc -l
}
