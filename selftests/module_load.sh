#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Loading and unloading espintcp.ko: repeated cycles, refusal to unload
# while a socket uses the ULP, refusal to load when the ULP name is taken.
# Runs as root inside the test VM; leaves the module unloaded.

cd "$(dirname "$0")" || exit 1
. lib/ktap.sh

top=$(cd .. && pwd)
ko=${ESPINTCP_KO:-$top/build/$(uname -r)/espintcp.ko}
squat=$top/build/$(uname -r)/selftests/modules/espintcp_test_squat.ko

ulp_available() {
	grep -qw espintcp /proc/sys/net/ipv4/tcp_available_ulp
}

loaded() {
	[ -e /sys/module/espintcp/refcnt ]
}

# rmmod, retrying while closed sockets are still being torn down.
unload() {
	local i
	for i in $(seq 50); do
		rmmod espintcp 2>/dev/null && return 0
		sleep 0.1
	done
	rmmod espintcp
}

test_cycles() {
	local i
	for i in $(seq 100); do
		insmod "$ko" || ktap_fail_msg "insmod #$i failed" || return
		ulp_available ||
			ktap_fail_msg "ULP not registered after load #$i" || return
		rmmod espintcp || ktap_fail_msg "rmmod #$i failed" || return
		! ulp_available ||
			ktap_fail_msg "ULP still registered after unload #$i" ||
			return
	done
	ktap_diag "100 load/unload cycles"
}

test_busy() {
	local family=$1 line out rc=0

	insmod "$ko" || ktap_fail_msg "insmod failed" || return
	coproc HOLD { exec ./ulp_hold "$family"; }
	if ! read -r -t 10 line <&"${HOLD[0]}" || [ "$line" != ready ]; then
		ktap_fail_msg "helper did not attach the ULP"
		rc=1
	elif out=$(rmmod espintcp 2>&1); then
		ktap_fail_msg "rmmod succeeded with a socket using the ULP"
		return 1
	elif ! grep -q "in use" <<<"$out"; then
		ktap_fail_msg "rmmod failed for another reason: $out"
		rc=1
	elif [ "$(cat /sys/module/espintcp/refcnt)" -lt 2 ]; then
		ktap_fail_msg "refcnt $(cat /sys/module/espintcp/refcnt), expected >= 2"
		rc=1
	fi
	kill "$HOLD_PID" 2>/dev/null
	wait "$HOLD_PID" 2>/dev/null
	unload || ktap_fail_msg "rmmod failed after the sockets closed" ||
		return
	return $rc
}

test_name_taken() {
	local before after msgs rc=0

	insmod "$squat" || ktap_fail_msg "cannot load the squatter" || return
	before=$(dmesg | wc -l)
	if insmod "$ko" 2>/dev/null; then
		ktap_fail_msg "espintcp.ko loaded although the ULP name is taken"
		rmmod espintcp
		rc=1
	fi
	after=$(dmesg | tail -n +"$((before + 1))")
	msgs=$(grep -c '^\[.*\] espintcp: ' <<<"$after")
	if [ "$msgs" != 1 ]; then
		ktap_fail_msg "expected one espintcp log line, got $msgs:"
		ktap_diag "$after"
		rc=1
	elif ! grep -q 'already registered' <<<"$after"; then
		ktap_fail_msg "log line does not say why: $after"
		rc=1
	fi
	rmmod espintcp_test_squat || rc=1
	return $rc
}

if ulp_available && ! loaded; then
	ktap_plan 1
	ktap_run module_load ktap_skip_msg "espintcp is built into this kernel"
	ktap_finish
fi
if loaded; then
	unload || { echo "Bail out! espintcp is loaded and busy"; exit 1; }
fi

ktap_plan 4
ktap_run load_unload_100 test_cycles
ktap_run busy_while_attached_ipv4 test_busy 4
ktap_run busy_while_attached_ipv6 test_busy 6
ktap_run refuse_when_name_taken test_name_taken
ktap_finish
