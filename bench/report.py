#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Turn bench/bench.sh's records into the benchmark's results.

usage: report.py OUT.json RAW.jsonl...

Each RAW file is one VM boot's records (one kernel, one ESP-in-TCP
implementation).  Writes OUT.json (every figure: median, minimum and
maximum over the repetitions, and the ratios), prints a table per run
and, with gnuplot installed, writes OUT.png: 1-stream TCP throughput
per mode and loss rate.  When two runs of the same kernel source differ
only in the implementation (make bench-parity), the ratios ours /
upstream are computed for each figure; for two builds of our module
measured in one boot (make bench-compare), the ratios head / base.
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

MODES = ["none", "esp", "udp", "tcp"]
MODE_NAMES = {"none": "no IPsec", "esp": "ESP", "udp": "ESP-in-UDP",
              "tcp": "ESP-in-TCP"}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_rev():
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def summary(values):
    return {"median": round(statistics.median(values), 2),
            "min": round(min(values), 2), "max": round(max(values), 2),
            "n": len(values)}


def load(path):
    recs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                recs.append(json.loads(line))
            except ValueError as e:
                raise SystemExit("report: %s:%d: %s" % (path, n, e))
    return recs


def losses_of(figs):
    return sorted({float(f["figure"][len("tput_loss"):]) for f in figs
                   if f["figure"].startswith("tput_loss")})


def figures_of(recs, warnings):
    """Group the records of one run into named figures."""
    groups = {}
    for r in recs:
        t = r["test"]
        key = (r["family"], r["cipher"], r["mode"])
        if t == "tput":
            name = "tput_%d" % r["streams"] if r["loss"] == 0 else \
                "tput_loss%g" % r["loss"]
            groups.setdefault(key + (name,), []).append(r["mbps"])
        elif t == "udp":
            groups.setdefault(key + ("udp_lost_percent",),
                              []).append(r["lost_percent"])
            groups.setdefault(key + ("udp_jitter_ms",),
                              []).append(r["jitter_ms"])
        elif t == "order":
            n = r["esp_packets"]
            if r["capture_drops"] or r.get("holes") or r["unparsed_streams"]:
                # The capture missed packets: the count is not whole.
                warnings.append("IPv%s %s %s: the order capture missed "
                                "packets, not counted" % key)
                continue
            groups.setdefault(key + ("order_late_percent",), []).append(
                100.0 * r["late"] / n if n else 0.0)
            groups.setdefault(key + ("order_max_gap",),
                              []).append(r["max_seq_gap"])
            groups.setdefault(key + ("order_retransmits",),
                              []).append(r["retransmits"])
        elif t == "rr":
            for k in ("tps", "mean_us", "p99_us"):
                groups.setdefault(key + ("rr_" + k,), []).append(r[k])
    figs = []
    for (fam, cipher, mode, name), vals in sorted(groups.items()):
        f = {"family": fam, "cipher": cipher, "mode": mode,
             "figure": name}
        f.update(summary(vals))
        figs.append(f)
    return figs


def fig(figs, fam, cipher, mode, name):
    for f in figs:
        if (f["family"], f["cipher"], f["mode"], f["figure"]) == \
                (fam, cipher, mode, name):
            return f["median"]
    return None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


# Figures where less is better: their ratios are reported as they are
# (a latency ratio of 1.1 means 10% slower).
def ratios_of(figs):
    out = []
    for fam in sorted({f["family"] for f in figs}):
        for cipher in sorted({f["cipher"] for f in figs
                              if f["cipher"] != "none"}):
            for name in ["tput_1", "tput_4"] + \
                    ["tput_loss%g" % x for x in losses_of(figs)] + \
                    ["rr_tps", "rr_mean_us", "rr_p99_us",
                     "order_late_percent"]:
                tcp = fig(figs, fam, cipher, "tcp", name)
                r = {"family": fam, "cipher": cipher, "figure": name,
                     "tcp_over_udp": ratio(tcp, fig(figs, fam, cipher,
                                                    "udp", name)),
                     "tcp_over_esp": ratio(tcp, fig(figs, fam, cipher,
                                                    "esp", name))}
                if r["tcp_over_udp"] is not None or \
                        r["tcp_over_esp"] is not None:
                    out.append(r)
    return out


def num(v):
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def cell(figs, fam, cipher, mode, name):
    for f in figs:
        if (f["family"], f["cipher"], f["mode"], f["figure"]) == \
                (fam, cipher, mode, name):
            if f["n"] > 1:
                return "%s (%s-%s)" % (num(f["median"]), num(f["min"]),
                                       num(f["max"]))
            return num(f["median"])
    return "-"


def table(run):
    figs = run["figures"]
    cols = [("1 stream", "tput_1"), ("4 streams", "tput_4")] + \
        [("%g%% loss" % x, "tput_loss%g" % x) for x in losses_of(figs)] + \
        [("UDP lost %", "udp_lost_percent"), ("jitter ms", "udp_jitter_ms"),
            ("RR/s", "rr_tps"), ("RR mean us", "rr_mean_us"),
            ("RR p99 us", "rr_p99_us"), ("late %", "order_late_percent"),
            ("retx", "order_retransmits")]
    rows = [["IPv", "cipher", "mode"] + [c[0] for c in cols]]
    for fam in sorted({f["family"] for f in figs}):
        for cipher in ["none"] + sorted({f["cipher"] for f in figs} -
                                        {"none"}):
            for mode in MODES:
                if not any(f["family"] == fam and f["cipher"] == cipher and
                           f["mode"] == mode for f in figs):
                    continue
                rows.append([str(fam), cipher, MODE_NAMES[mode]] +
                            [cell(figs, fam, cipher, mode, c[1])
                             for c in cols])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["%s, ESP-in-TCP by %s espintcp (TCP throughput in Mbit/s: "
             "median (min-max))" % (run["kernel"], run["impl"])]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    for w in run["warnings"]:
        lines.append("warning: " + w)
    lines.append("ratios (ESP-in-TCP / ESP-in-UDP, ESP-in-TCP / ESP):")
    for r in run["ratios"]:
        lines.append("  IPv%s %-17s %-11s %s  %s" % (
            r["family"], r["cipher"], r["figure"],
            r["tcp_over_udp"], r["tcp_over_esp"]))
    return "\n".join(lines)


def parity(runs):
    """ours / upstream, for runs on kernels from the same source."""
    out = []
    for a in runs:
        for b in runs:
            if a["impl"] != "ours" or b["impl"] != "upstream" or \
                    a.get("source") != b.get("source"):
                continue
            for f in a["figures"]:
                if f["mode"] != "tcp":
                    continue
                u = fig(b["figures"], f["family"], f["cipher"], "tcp",
                        f["figure"])
                r = ratio(f["median"], u)
                if r is not None:
                    out.append({"source": a["source"],
                                "family": f["family"],
                                "cipher": f["cipher"],
                                "figure": f["figure"], "ours": f["median"],
                                "upstream": u, "ours_over_upstream": r})
    return out


def compare(runs):
    """head / base, for the two builds of make bench-compare: every
    mode, the ones without ESP-in-TCP being the control (near 1 unless
    the conditions changed during the run)."""
    out = []
    for a in runs:
        for b in runs:
            if a["impl"] != "head" or b["impl"] != "base" or \
                    a["kernel"] != b["kernel"]:
                continue
            for f in a["figures"]:
                v = fig(b["figures"], f["family"], f["cipher"], f["mode"],
                        f["figure"])
                r = ratio(f["median"], v)
                if r is not None:
                    out.append({"kernel": a["kernel"],
                                "family": f["family"],
                                "cipher": f["cipher"], "mode": f["mode"],
                                "figure": f["figure"], "head": f["median"],
                                "base": v, "head_over_base": r})
    return out


def compare_table(cmp):
    """head / base for the main figures: a row per configuration."""
    names = ["tput_1", "tput_4"] + sorted(
        {c["figure"] for c in cmp if c["figure"].startswith("tput_loss")}) \
        + ["rr_tps", "rr_mean_us", "rr_p99_us"]
    rows = [["kernel", "IPv", "cipher", "mode"] + names]
    keys = []
    for c in cmp:
        k = (c["kernel"], c["family"], c["cipher"], c["mode"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        vals = {c["figure"]: c["head_over_base"] for c in cmp
                if (c["kernel"], c["family"], c["cipher"], c["mode"]) == k}
        rows.append([k[0], str(k[1]), k[2], MODE_NAMES[k[3]]] +
                    ["%.3f" % vals[n] if n in vals else "-" for n in names])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["head / base (%s; the modes without ESP-in-TCP are the "
             "control):" % os.environ.get("BENCH_BASE", "base")]
    for r in rows:
        lines.append(("  " + "  ".join(
            c.ljust(w) for c, w in zip(r, widths))).rstrip())
    return "\n".join(lines)


def plot(runs, png):
    if not shutil.which("gnuplot"):
        print("report: no gnuplot, no plot (make deps: gnuplot-nox)")
        return None
    dat = png[:-4] + ".dat"
    blocks = []
    titles = []
    for run in runs:
        for fam in sorted({f["family"] for f in run["figures"]}):
            rows = []
            losses = losses_of(run["figures"])
            # Without IPsec the figure is tens of times larger: it
            # goes in the title, not among the bars.
            plain = fig(run["figures"], fam, "none", "none", "tput_1")
            for mode in MODES[1:]:
                cipher = "gcm-aes128"
                vals = [fig(run["figures"], fam, cipher, mode, n)
                        for n in ["tput_1"] + ["tput_loss%g" % x
                                               for x in losses]]
                rows.append('"%s" %s' % (MODE_NAMES[mode], " ".join(
                    "NaN" if v is None else str(v) for v in vals)))
            blocks.append("\n".join(rows))
            titles.append(("%s (%s), IPv%s%s" % (
                run["kernel"], run["impl"], fam,
                "" if plain is None else
                "; no IPsec: %s Mbit/s" % num(plain)), losses))
    with open(dat, "w") as f:
        f.write("\n\n\n".join(blocks) + "\n")
    n = len(blocks)
    script = """set terminal pngcairo size 900,%d enhanced font 'sans,10'
set output '%s'
set multiplot layout %d,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel 'Mbit/s'
set yrange [0:*]
set key top right
set grid ytics
""" % (300 * n, png, n)
    for i, (t, losses) in enumerate(titles):
        script += ("set title \"1-stream TCP throughput, AES-GCM-128: %s\"\n"
                   "plot '%s' index %d using 2:xtic(1) title 'no loss'"
                   % (t, dat, i))
        for j, x in enumerate(losses):
            script += ", '' index %d using %d title '%g%% loss'" % (
                i, 3 + j, x)
        script += "\n"
    script += "unset multiplot\n"
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(dat)
    return png


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = sys.argv[1]
    runs = []
    for path in sys.argv[2:]:
        all_recs = load(path)
        if not all_recs:
            print("report: %s: no records" % path, file=sys.stderr)
            return 1
        # One boot may measure several implementations in turn (make
        # bench-compare): a run each.  The summary is the boot's.
        summaries = [r for r in all_recs if r["test"] == "summary"]
        impls = []
        for r in all_recs:
            if r["test"] != "summary" and r["impl"] not in impls:
                impls.append(r["impl"])
        for impl in impls:
            recs = [r for r in all_recs
                    if r["impl"] == impl and r["test"] != "summary"]
            warnings = []
            figs = figures_of(recs, warnings)
            for r in summaries:
                if r["failed"]:
                    warnings.append("%d measurements failed in this boot "
                                    "(see the log)" % r["failed"])
            if not summaries:
                warnings.append("the run did not finish")
            run = {"kernel": recs[0]["kernel"], "impl": impl,
                   # The kernel source: a release without its local
                   # version.
                   "source": recs[0]["kernel"].split("-")[0],
                   "figures": figs, "ratios": ratios_of(figs),
                   "counters": [r["espintcp_stat"] for r in recs
                                if r["test"] == "counters"],
                   "warnings": warnings, "records": recs + summaries}
            runs.append(run)
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "git": git_rev(), "host_cpu": cpu_model(),
              "guest": "qemu TCG, 2 vCPUs: compare figures of one run "
                       "with each other only",
              "settings": {k: os.environ[k] for k in os.environ
                           if k.startswith("BENCH_")},
              "runs": runs, "ours_over_upstream": parity(runs),
              "head_over_base": compare(runs)}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    for run in runs:
        print(table(run))
        print()
    if result["ours_over_upstream"]:
        print("ours / upstream:")
        for p in result["ours_over_upstream"]:
            print("  %s IPv%s %-17s %-11s %g / %g = %s" % (
                p["source"], p["family"], p["cipher"], p["figure"],
                p["ours"], p["upstream"], p["ours_over_upstream"]))
    if result["head_over_base"]:
        print(compare_table(result["head_over_base"]))
        print()
    png = plot(runs, out[:-5] + ".png" if out.endswith(".json")
               else out + ".png")
    print("results: %s%s" % (out, ", plot: " + png if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
