#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Loading and unloading espintcp.ko: repeated cycles, refusal to unload
# while a socket uses the ULP, refusal to load when the ULP name is taken.
# Runs as root inside the test VM; leaves the module unloaded.

cd "$(dirname "$0")" || exit 1
. lib/ktap.sh
. lib/module.sh

top=$(cd .. && pwd)
ko=${ESPINTCP_KO:-$top/build/$(uname -r)/espintcp.ko}
squat=$top/build/$(uname -r)/selftests/modules/espintcp_test_squat.ko

ulp_available() {
	grep -qw espintcp /proc/sys/net/ipv4/tcp_available_ulp
}

loaded() {
	[ -e /sys/module/espintcp/refcnt ]
}


test_cycles() {
	local i n=100

	# The debug kernel (make check-debug) runs some 20 times slower.
	[ -n "${ESPINTCP_DEBUG:-}" ] && n=10
	for i in $(seq $n); do
		espintcp_insmod "$ko" || ktap_fail_msg "insmod #$i failed" || return
		ulp_available ||
			ktap_fail_msg "ULP not registered after load #$i" || return
		rmmod espintcp || ktap_fail_msg "rmmod #$i failed" || return
		! ulp_available ||
			ktap_fail_msg "ULP still registered after unload #$i" ||
			return
	done
	ktap_diag "$n load/unload cycles"
}

test_busy() {
	local family=$1 line out rc=0

	espintcp_insmod "$ko" || ktap_fail_msg "insmod failed" || return
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
	espintcp_rmmod || ktap_fail_msg "rmmod failed after the sockets closed" ||
		return
	return $rc
}

test_name_taken() {
	local before after msgs esp4 rc=0

	modprobe -q esp4
	esp4=$(cat /sys/module/esp4/refcnt)
	insmod "$squat" || ktap_fail_msg "cannot load the squatter" || return
	before=$(dmesg | wc -l)
	if espintcp_insmod "$ko" 2>/dev/null; then
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
	# The failed load gave back what it took.
	[ "$(cat /sys/module/esp4/refcnt)" = "$esp4" ] ||
		{ ktap_fail_msg "esp4 refcnt $esp4 before, $(cat /sys/module/esp4/refcnt) after"; rc=1; }
	rmmod espintcp_test_squat || rc=1
	return $rc
}

# Module init waits on nobody: it never asks user space for esp6
# (MODULE_SOFTDEP has modprobe load it first), so no socket can take the
# module while init sleeps and then fail.  Without esp6 the module loads
# for IPv4.  An "install esp6" rule that would take 5 s and fail shows
# whether init ran it.
test_no_esp6() {
	local mark=/run/espintcp-esp6-requested before after rc=0

	modprobe -q esp4
	if [ -e /sys/module/esp6/refcnt ] && ! rmmod esp6 2>/dev/null; then
		ktap_skip_msg "esp6 is loaded and in use"
		return
	fi
	[ -e /sys/module/esp6 ] &&
		{ ktap_skip_msg "esp6 is built in"; return; }
	rm -f "$mark"
	mount -t tmpfs espintcp-test /etc/modprobe.d || return 1
	echo "install esp6 /bin/sh -c 'touch $mark; sleep 5; exit 1'" \
		> /etc/modprobe.d/esp6.conf

	before=$(dmesg | wc -l)
	if ! insmod "$ko"; then
		ktap_fail_msg "espintcp did not load without esp6"
		rc=1
	fi
	after=$(dmesg | tail -n +"$((before + 1))")
	umount /etc/modprobe.d
	[ ! -e "$mark" ] ||
		{ ktap_fail_msg "module init asked user space for esp6"; rc=1; }
	grep -q 'espintcp: no ESP for IPv6.*IPv4 only' <<<"$after" ||
		{ ktap_fail_msg "the log does not say IPv6 is unavailable: $after"; rc=1; }
	loaded || return 1

	# IPv4 works: the ULP, and an SA with TCP encapsulation.
	./ulp_hold 4 </dev/null | grep -q ready ||
		{ ktap_fail_msg "cannot attach the ULP over IPv4"; rc=1; }
	espintcp_add_test_sa ||
		{ ktap_fail_msg "IPv4 espintcp SA refused"; rc=1; }
	ip xfrm state flush
	espintcp_rmmod || rc=1
	return $rc
}

# What user nobody reaches from a user namespace of its own, where it
# has CAP_NET_ADMIN over its own network namespace only: prints
# "ulp=RESULT sa=RESULT", each "ok" or the errno's name.
userns_reach() {
	local script='ip link set lo up
echo "ulp=$(espintcp_try_attach)"
if err=$(espintcp_add_test_sa 2>&1); then
	echo sa=ok
elif echo "$err" | grep -qE "Operation not permitted|needs CAP_NET_ADMIN"; then
	echo sa=EPERM
else
	echo "sa=$err"
fi'
	setpriv --reuid=65534 --regid=65534 --clear-groups unshare -Urn \
		bash -c "$(declare -f espintcp_try_attach espintcp_add_test_sa)
$script" 2>&1 | tr '\n' ' '
}

# By default only CAP_NET_ADMIN in the initial user namespace attaches
# the ULP or adds a TCP SA; allow_userns=1 gives upstream's reach back.
test_userns() {	# Y|N EXPECTED
	local out rc=0

	espintcp_insmod "$ko" || return 1
	modprobe -q xfrm_user
	setpriv --reuid=65534 --regid=65534 --clear-groups unshare -Urn true ||
		{ espintcp_rmmod; ktap_skip_msg "no unprivileged user namespaces here"; return; }
	echo "$1" > /sys/module/espintcp/parameters/allow_userns
	out=$(userns_reach)
	ktap_diag "allow_userns=$1: $out"
	[ "$out" = "$2 " ] || { ktap_fail_msg "expected $2"; rc=1; }
	echo N > /sys/module/espintcp/parameters/allow_userns
	espintcp_rmmod || rc=1
	return $rc
}

if ulp_available && ! loaded; then
	ktap_plan 1
	ktap_run module_load ktap_skip_msg "espintcp is built into this kernel"
	ktap_finish
fi
if loaded; then
	espintcp_rmmod || { echo "Bail out! espintcp is loaded and busy"; exit 1; }
fi

ktap_plan 7
ktap_run load_unload_100 test_cycles
ktap_run busy_while_attached_ipv4 test_busy 4
ktap_run busy_while_attached_ipv6 test_busy 6
ktap_run refuse_when_name_taken test_name_taken
ktap_run loads_without_esp6 test_no_esp6
ktap_run userns_refused_by_default test_userns N "ulp=EPERM sa=EPERM"
ktap_run userns_allowed_by_parameter test_userns Y "ulp=ok sa=ok"
ktap_finish
