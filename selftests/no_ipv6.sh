#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# espintcp on a kernel booted with ipv6.disable=1, where esp6 cannot
# load: the module loads anyway, says why IPv6 is missing, and gives
# ESP-in-TCP over IPv4.  selftests/check runs it in a VM boot of its own.

cd "$(dirname "$0")" || exit 1
. lib/ktap.sh
. lib/module.sh

top=$(cd .. && pwd)
ko=${ESPINTCP_KO:-$top/build/$(uname -r)/espintcp.ko}
log=

test_load() {
	local before

	! modprobe -q esp6 2>/dev/null ||
		ktap_fail_msg "esp6 loaded: IPv6 is not disabled" || return
	before=$(dmesg | wc -l)
	espintcp_insmod "$ko" || ktap_fail_msg "espintcp did not load" ||
		return
	log=$(dmesg | tail -n +"$((before + 1))")
	grep -qw espintcp /proc/sys/net/ipv4/tcp_available_ulp ||
		ktap_fail_msg "the ULP is not registered" || return
	grep -q 'espintcp: no ESP for IPv6.*IPv4 only' <<<"$log" ||
		ktap_fail_msg "the log does not say why IPv6 is missing: $log"
}

test_ulp() {
	./ulp_hold 4 </dev/null | grep -q ready ||
		ktap_fail_msg "cannot attach the ULP over IPv4"
}

test_sa() {
	local rc=0

	espintcp_add_test_sa ||
		{ ktap_fail_msg "IPv4 espintcp SA refused"; rc=1; }
	ip xfrm state flush
	return $rc
}

test_unload() {
	espintcp_rmmod ||
		ktap_fail_msg "rmmod failed: refcnt $(cat /sys/module/espintcp/refcnt)"
}

ktap_plan 4
if [ -e /proc/sys/net/ipv6 ]; then
	for t in loads ulp_ipv4 sa_ipv4 unloads; do
		ktap_run "$t" ktap_skip_msg "IPv6 is enabled (boot with ipv6.disable=1)"
	done
	ktap_finish
fi
ktap_run loads test_load
ktap_run ulp_ipv4 test_ulp
ktap_run sa_ipv4 test_sa
ktap_run unloads test_unload
ktap_finish
