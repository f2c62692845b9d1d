#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Where each mode spends the guest's CPU, per megabyte moved.

usage: profile.py OUT.json RAW.jsonl...

Reads the "profile" records of bench/bench.sh (BENCH_PROFILE=1): for
each configuration, the samples perf took on every CPU of the guest
during a 1-stream transfer, by symbol, and the bytes that transfer
moved.  Samples per second divided by megabytes per second is a cost in
samples per megabyte, which compares two modes whatever their
throughput: what ESP-in-TCP costs beyond ESP-in-UDP is the difference.
Prints, for each family and cipher, the cost per category of symbols
for each mode and the difference, then the symbols that cost ESP-in-TCP
the most beyond ESP-in-UDP, and who calls the spinlocks and copies that
cost the most; writes the same to OUT.json.
"""

import json
import re
import sys

# Symbols of our module and of user space have their own categories;
# for the others, the first rule that matches the symbol names it.
CATEGORIES = [
    ("idle", r"^(native_safe_halt|default_idle|.*cpu_idle|acpi_idle|"
             r"poll_idle|mwait_idle)"),
    ("crypto", r"(aes|gcm|ghash|gf128|chacha|poly1305|crypto_|"
               r"clmul|_ctr_|sha\d|hmac)"),
    ("copy and clear", r"^(mem(cpy|move|set)|copy_user|copy_page|"
                       r"clear_page|__copy_|_copy_to_iter|"
                       r"_copy_from_iter|skb_copy_bits|"
                       r"csum_partial_copy)"),
    ("checksum", r"csum"),
    ("strparser", r"^(__)?strp_"),
    ("XFRM and ESP", r"(xfrm|esp\d?_|esp_)"),
    ("TCP", r"^(__)?(tcp|inet_csk|sk_stream|skb_send_sock|"
            r"do_tcp_sendpages)"),
    ("IP, UDP and devices", r"^(__)?(ip_|ip6_|ipv6_|udp|veth|"
                            r"netif_|napi_|__netif|dev_|"
                            r"net_rx|process_backlog|gro_|"
                            r"__dev_|inet_gro|skb_gro|nf_)"),
    ("memory", r"^(kmem_cache|__kmalloc|kmalloc|kfree|__alloc_pages|"
               r"alloc_pages|__free_pages|free_unref|page_frag|"
               r"skb_release|__slab|slab|___slab|__kmem|"
               r"get_page_from_freelist|rmqueue|skb_free_head|"
               r"kfree_skbmem|__alloc_skb|skb_clone|__skb_clone|"
               r"pskb_expand_head|build_skb)"),
    ("locks", r"(spin_lock|spin_unlock|queued_spin|_raw_)"),
    ("scheduler and softirq", r"^(schedule|__schedule|finish_task_switch|"
                              r"__switch_to|try_to_wake_up|"
                              r"__softirq|do_softirq|__do_softirq|"
                              r"irq_exit|ttwu|enqueue_|dequeue_|"
                              r"update_|pick_next|__wake_up|"
                              r"select_task|sched_)"),
]
RULES = [(name, re.compile(rx)) for name, rx in CATEGORIES]
NAMES = ["espintcp module", "user space"] + \
    [name for name, _ in CATEGORIES] + ["other", "below 0.05%"]


def category(key):
    dso, sym = key.split(":", 1)
    # perf in the guest reads modules' symbols from kallsyms.
    if dso == "espintcp" or sym.startswith("espintcp_"):
        return "espintcp module"
    if dso != "kernel.kallsyms":
        return "user space"
    for name, rx in RULES:
        if rx.search(sym):
            return name
    return "other"


def cost(rec):
    """Samples per MB moved, by symbol and by category."""
    mb_per_s = rec["bytes"] / rec["seconds"] / 1e6
    per_mb = 1.0 / rec["sampled_seconds"] / mb_per_s
    syms = {k: v * per_mb for k, v in rec["symbols"].items()}
    cats = dict.fromkeys(NAMES, 0.0)
    for k, v in syms.items():
        cats[category(k)] += v
    cats["below 0.05%"] = (rec["samples"] - sum(rec["symbols"].values())) \
        * per_mb
    callers = {h: {k: v * per_mb for k, v in c.items()}
               for h, c in rec.get("callers", {}).items()}
    return {"mbps": round(mb_per_s * 8, 1), "per_mb": syms, "categories": cats,
            "busy_per_mb": sum(v for k, v in cats.items() if k != "idle"),
            "callers": callers}


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: profile.py OUT.json RAW.jsonl...")
    recs = []
    for path in sys.argv[2:]:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("test") == "profile":
                    recs.append(r)
    if not recs:
        sys.exit("profile.py: no profile records")

    out = []
    groups = {}
    for r in recs:
        groups.setdefault((r["kernel"], r["family"], r["cipher"]), {})[
            r["mode"]] = cost(r)
    for (kernel, fam, cipher), modes in sorted(groups.items()):
        print(f"\n{kernel}, IPv{fam}, {cipher}: guest CPU samples per MB "
              "moved (1 stream)")
        names = [m for m in ("udp", "tcp") if m in modes] + \
            [m for m in modes if m not in ("udp", "tcp")]
        print(f"  {'':24}" + "".join(f"{m:>12}" for m in names) +
              ("     tcp-udp" if {"udp", "tcp"} <= set(modes) else ""))
        rows = NAMES + ["busy (all but idle)"]
        for cat in rows:
            vals = [modes[m]["busy_per_mb"] if cat.startswith("busy")
                    else modes[m]["categories"][cat] for m in names]
            line = f"  {cat:24}" + "".join(f"{v:12.1f}" for v in vals)
            if {"udp", "tcp"} <= set(modes):
                d = vals[names.index("tcp")] - vals[names.index("udp")]
                line += f"{d:+12.1f}"
            print(line)
        print(f"  {'Mbit/s':24}" + "".join(f"{modes[m]['mbps']:12.1f}"
                                           for m in names))
        entry = {"kernel": kernel, "family": fam, "cipher": cipher,
                 "modes": modes}
        if {"udp", "tcp"} <= set(modes):
            u, t = modes["udp"]["per_mb"], modes["tcp"]["per_mb"]
            diff = {k: t.get(k, 0) - u.get(k, 0) for k in set(u) | set(t)}
            top = sorted(diff.items(), key=lambda kv: -kv[1])[:15]
            print("  ESP-in-TCP's largest extra costs (samples per MB):")
            for k, v in top:
                print(f"    {v:+8.1f}  {k}")
            entry["tcp_minus_udp"] = dict(top)
        for m in names:
            for helper, c in sorted(modes[m]["callers"].items()):
                if sum(c.values()) < 5:
                    continue
                print(f"  {m}: {helper} ({sum(c.values()):.1f} per MB), "
                      "called from:")
                for k, v in list(c.items())[:6]:
                    print(f"    {v:8.1f}  {k}")
        out.append(entry)
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
