#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The fuzzer (fuzz.py) as one KTAP result, inside the test VM: load the
# module, fuzz for ESPINTCP_FUZZ_SECONDS (default 60) with seed
# ESPINTCP_FUZZ_SEED (default: a random one, printed).  The VM runner
# fails the run on any kernel splat; run_tests unloads the module after.

cd "$(dirname "$0")" || exit 1
. lib/ktap.sh
. lib/module.sh

top=$(cd .. && pwd)
ko=${ESPINTCP_KO:-$top/build/$(uname -r)/espintcp.ko}

fuzz() {
	[ -e /sys/module/espintcp ] || espintcp_insmod "$ko" || return 1
	python3 ./fuzz.py --seconds "${ESPINTCP_FUZZ_SECONDS:-60}" --ko "$ko" \
		${ESPINTCP_FUZZ_SEED:+--seed "$ESPINTCP_FUZZ_SEED"}
}

ktap_plan 1
ktap_run fuzz fuzz
ktap_finish
