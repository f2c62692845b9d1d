# SPDX-License-Identifier: GPL-2.0-only
# KTAP output for shell selftests.  Source it, call ktap_plan N, then
# ktap_run NAME FUNCTION [ARG...] per test, then ktap_finish.  A test
# function returns 0 (pass), $KSFT_SKIP (skip, reason in $ktap_reason)
# or anything else (fail); diagnostics go through ktap_diag.

KSFT_SKIP=4
ktap_num=0
ktap_failed=0
ktap_reason=

ktap_plan() {
	echo "TAP version 13"
	echo "1..$1"
}

ktap_diag() {
	echo "# $*"
}

# Fail the current test with a message: 'cond || ktap_fail_msg ...'.
ktap_fail_msg() {
	ktap_diag "FAIL: $*"
	return 1
}

ktap_skip_msg() {
	ktap_reason=$*
	return "$KSFT_SKIP"
}

ktap_run() {
	local name=$1 rc
	shift
	ktap_num=$((ktap_num + 1))
	ktap_reason=
	ktap_diag "RUN $name"
	"$@"
	rc=$?
	case $rc in
	0)	echo "ok $ktap_num $name" ;;
	"$KSFT_SKIP")
		echo "ok $ktap_num $name # SKIP $ktap_reason" ;;
	*)	echo "not ok $ktap_num $name"
		ktap_failed=$((ktap_failed + 1)) ;;
	esac
}

ktap_finish() {
	[ "$ktap_failed" = 0 ]
	exit $?
}
