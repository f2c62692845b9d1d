#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Fold 'perf script' output (with call chains) into one JSON object.

usage: perf script -F comm,ip,sym,dso | perf_fold.py

Prints {"samples": N, "symbols": {"dso:symbol": n}, "callers": {helper:
{caller: n}}}: the samples of each symbol where they were taken (those
of 0.05% of the samples or more), and for the helpers that many paths
share (spinlocks, copies, clearing), the first function in the chain
that is not a helper itself, so that a profile says whose lock spins
and whose copy it is.  Chains may be missing (no unwinder): then the
callers stay empty.
"""

import json
import re
import sys

FRAME = re.compile(r"^\s+[0-9a-f]+\s+(.*?)(\+0x[0-9a-f]+)?\s+\((.*)\)\s*$")
HELPER = re.compile(r"^(native_queued_spin_lock_slowpath|_raw_spin_lock\w*|"
                    r"_raw_spin_unlock\w*|__raw_spin_lock\w*|"
                    r"queued_spin_lock\w*|do_raw_spin_lock|"
                    r"mem(cpy|set|move)\w*|__mem(cpy|set|move)\w*|"
                    r"copy_user\w*|rep_movs_alternative|clear_page\w*|"
                    r"__copy_\w+|_copy_(to|from)_iter|copy_page\w*|"
                    r"skb_copy_bits|skb_put_zero|"
                    r"__(local_)?bh_\w+|__rcu_read_\w+)$")
# The helpers whose callers are reported.
REPORTED = re.compile(r"^(native_queued_spin_lock_slowpath|mem(cpy|set)\w*|"
                      r"copy_user\w*|rep_movs_alternative|clear_page\w*)$")


def main():
    samples = 0
    symbols = {}
    callers = {}
    frames = []

    def flush():
        nonlocal samples
        if not frames:
            return
        samples += 1
        leaf_dso, leaf = frames[0]
        key = leaf_dso.strip("[]") + ":" + leaf
        symbols[key] = symbols.get(key, 0) + 1
        if REPORTED.match(leaf):
            who = next((s for _, s in frames[1:] if not HELPER.match(s)),
                       "?")
            c = callers.setdefault(leaf, {})
            c[who] = c.get(who, 0) + 1
        frames.clear()

    for line in sys.stdin:
        if not line.strip():
            flush()
            continue
        m = FRAME.match(line)
        if m:
            frames.append((m.group(3).rsplit("/", 1)[-1], m.group(1)))
        else:
            flush()		# a sample's header line
    flush()

    limit = samples * 0.0005
    symbols = {k: v for k, v in symbols.items() if v >= limit}
    callers = {h: dict(sorted(c.items(), key=lambda kv: -kv[1])[:12])
               for h, c in callers.items() if sum(c.values()) >= limit}
    print(json.dumps({"samples": samples, "symbols": symbols,
                      "callers": callers}))


if __name__ == "__main__":
    main()
