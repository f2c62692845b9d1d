#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Tests of the VM runner itself, run on the host (each boots the VM):
# it runs the Debian kernel, passes exit codes through, and fails runs
# whose guest crashed, hung or printed a kernel WARNING.

cd "$(dirname "$0")/../.." || exit 1
. selftests/lib/ktap.sh

run=selftests/vm/run
kver=$(selftests/vm/kver "${KVER:-6.1}")

test_uname() {
	local out
	out=$($run -k "$kver" -- uname -r) || ktap_fail_msg "run failed" || return
	[ "$out" = "$kver" ] || ktap_fail_msg "guest says '$out', want '$kver'"
}

test_exit_code() {
	local rc
	$run -k "$kver" -- sh -c 'exit 3'
	rc=$?
	[ "$rc" = 3 ] || ktap_fail_msg "exit 3 came back as $rc"
}

test_false() {
	$run -k "$kver" -- false && ktap_fail_msg "false came back as success"
	return 0
}

test_warn() {
	local err
	err=$($run -k "$kver" -- insmod "build/$kver/selftests/modules/espintcp_test_warn.ko" 2>&1 >/dev/null) &&
		ktap_fail_msg "a run with a kernel WARNING came back as success"
	grep -q 'deliberate warning from the espintcp selftests' <<<"$err" ||
		ktap_fail_msg "the guest kernel log with the WARNING was not printed"
}

test_timeout() {
	local err
	err=$($run -k "$kver" -t 15 -- sleep 600 2>&1) &&
		ktap_fail_msg "a hung guest came back as success"
	grep -q 'timed out' <<<"$err" || ktap_fail_msg "no timeout reported"
}

ktap_plan 5
ktap_run vm_uname test_uname
ktap_run vm_exit_code test_exit_code
ktap_run vm_false_fails test_false
ktap_run vm_warn_fails test_warn
ktap_run vm_timeout_fails test_timeout
ktap_finish
