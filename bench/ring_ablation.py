#!/usr/bin/env python3
"""Tables for bench/ring-ablation.sh: per row, the median of the per-pair ratios gdswap/fio.

  ring_ablation.py row RAW ROW OP          print one row's figures so far
  ring_ablation.py report OUT PAIRS OPS GDSWAP_VERSION FIO_VERSION KERNEL
"""

import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fio_vs_host import fio_figures, gdswap_figures  # noqa: E402


def runs(raw):
    out = []
    with open(os.path.join(raw, "runs.tsv")) as f:
        for line in f:
            row, pair, op, tool, name, cmd = line.rstrip("\n").split("\t", 5)
            out.append({"row": row, "pair": int(pair), "op": op, "tool": tool,
                        "json": name, "cmd": cmd})
    return out


def row_figures(raw, row, op):
    pairs = {}
    for r in runs(raw):
        if r["row"] != row or r["op"] != op:
            continue
        path = os.path.join(raw, r["json"])
        fig = fio_figures(path, op) if r["tool"] == "fio" else gdswap_figures(path)
        pairs.setdefault(r["pair"], {})[r["tool"]] = fig
    per_pair = []
    for p in sorted(pairs):
        f, g = pairs[p].get("fio"), pairs[p].get("gdswap")
        if not f or not g:
            continue
        per_pair.append({
            "pair": p,
            "fio_gibps": f["bandwidth_gibps"],
            "gdswap_gibps": g["bandwidth_gibps"],
            "bw_ratio": g["bandwidth_gibps"] / f["bandwidth_gibps"],
            "cpu_ratio": g["cpu_s_per_gib"] / f["cpu_s_per_gib"] if f["cpu_s_per_gib"] else None,
            "fio_p50_ms": (f["lat_p50_us"] or 0) / 1000.0,
            "gdswap_p50_ms": g["latency_p50_us"] / 1000.0,
            "backend_mode": g["backend_mode"],
        })
    if not per_pair:
        return None

    def med(key):
        vals = [x[key] for x in per_pair if x[key] is not None]
        return statistics.median(vals) if vals else None

    bw = [x["bw_ratio"] for x in per_pair]
    return {
        "row": row, "op": op, "pairs": per_pair,
        "fio_gibps": med("fio_gibps"), "gdswap_gibps": med("gdswap_gibps"),
        "bw_ratio": med("bw_ratio"), "bw_ratio_min": min(bw), "bw_ratio_max": max(bw),
        "cpu_ratio": med("cpu_ratio"),
        "fio_p50_ms": med("fio_p50_ms"), "gdswap_p50_ms": med("gdswap_p50_ms"),
        "backend_mode": per_pair[-1]["backend_mode"],
    }


def fmt(v, d=3):
    return "-" if v is None else f"{v:.{d}f}"


def strace_calls(path):
    """(calls of io_uring_enter, total calls) from an strace -c summary."""
    enter = total = None
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts and parts[-1] == "io_uring_enter":
                    enter = int(parts[3])
                if parts and parts[-1] == "total":
                    total = int(parts[3])
    except (OSError, ValueError, IndexError):
        pass
    return enter, total


def report(out, pairs, ops, gd_version, fio_version, kernel):
    raw = os.path.join(out, "raw")
    rows = []
    with open(os.path.join(raw, "rows.tsv")) as f:
        for line in f:
            name, gd, fi, pre = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
            for op in ops.split(","):
                fig = row_figures(raw, name, op)
                if fig:
                    fig.update({"gdswap_args": gd, "fio_args": fi, "prefix": pre})
                    rows.append(fig)
    st = {t: strace_calls(os.path.join(raw, f"strace-{t}.txt")) for t in ("fio", "gdswap")}
    doc = {"schema": "gdswap.ring-ablation.1", "pairs_per_row": int(pairs), "ops": ops,
           "gdswap_version": gd_version, "fio_version": fio_version, "kernel": kernel,
           "rows": rows,
           "strace_io_uring_enter": {t: st[t][0] for t in st},
           "strace_total_calls": {t: st[t][1] for t in st}}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    lines = [
        "# io_uring ring ablation: gdswap host engine vs fio, one knob per row",
        "",
        f"gdswap `{gd_version}`, `{fio_version}`, kernel {kernel}. Produced by "
        "`bench/ring-ablation.sh`; nothing here is edited by hand.",
        "",
        f"Each row: {pairs} pairs alternating which tool runs first; each run 1 warm-up + 3 "
        "measured loops over a 1 GiB file, 1 MiB blocks, queue depth 8, 1 thread, O_DIRECT, "
        f"page cache dropped before each run: {os.environ.get('DROP', '0') == '1'}. Both tools with fio's footprint: 8 reused 1 MiB "
        "buffers (gdswap `--buffer ring`), in 2 MiB hugetlb pages (fio `--iomem=shmhuge`, "
        "gdswap `--huge-pages hugetlb`) unless the row says otherwise. Figures are medians "
        "over the pairs; ratios are gdswap/fio per pair, then the median (min-max).",
        "",
        "| row | op | gdswap args | fio args | fio GiB/s | gdswap GiB/s | bw ratio (min-max) "
        "| CPU-s/GiB ratio | p50 ms fio / gdswap |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        gd = (r["prefix"] + " " + r["gdswap_args"]).strip() or "(default)"
        fi = (r["prefix"] + " " + r["fio_args"]).strip() or "(default)"
        lines.append(
            f"| {r['row']} | {r['op']} | `{gd}` | `{fi}` | {fmt(r['fio_gibps'], 2)} | "
            f"{fmt(r['gdswap_gibps'], 2)} | **{fmt(r['bw_ratio'])}** "
            f"({fmt(r['bw_ratio_min'])}-{fmt(r['bw_ratio_max'])}) | {fmt(r['cpu_ratio'])} | "
            f"{fmt(r['fio_p50_ms'], 2)} / {fmt(r['gdswap_p50_ms'], 2)} |")
    try:
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = ["?"] * 3
    lines += ["", f"Machine: {os.cpu_count()} CPUs, load average at the end of the run "
              f"{' '.join(load)} (1, 5, 15 min). On a shared machine (other builds running beside "
              "the benchmark) each pair's ratio moves by tens of percent: read a row as a "
              "difference only where its whole min-max range moved, not its median alone."]
    lines += ["", "What gdswap reported it ran, per row (its `backend_mode`):", ""]
    for r in rows:
        lines.append(f"- {r['row']} ({r['op']}): {r['backend_mode']}")
    lines += ["", "## System calls of one 1 GiB read (default variant, `strace -c -f`)", "",
              "| tool | io_uring_enter calls | all system calls |", "|---|---:|---:|"]
    for t in ("fio", "gdswap"):
        lines.append(f"| {t} | {st[t][0] if st[t][0] is not None else '-'} | "
                     f"{st[t][1] if st[t][1] is not None else '-'} |")
    lines += ["", "Raw: `raw/strace-*.txt`, `raw/perf-*.txt` (or `raw/perf-unavailable.txt`), "
              "every run's JSON and command line in `raw/runs.tsv`."]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv):
    if len(argv) >= 4 and argv[0] == "row":
        fig = row_figures(argv[1], argv[2], argv[3])
        if fig:
            print(f"ring-ablation: {argv[2]:<22} {argv[3]:<5} fio {fmt(fig['fio_gibps'], 2)} "
                  f"gdswap {fmt(fig['gdswap_gibps'], 2)} GiB/s ratio {fmt(fig['bw_ratio'])} "
                  f"({fmt(fig['bw_ratio_min'])}-{fmt(fig['bw_ratio_max'])}) cpu "
                  f"{fmt(fig['cpu_ratio'])}")
        return 0
    if len(argv) == 7 and argv[0] == "report":
        report(*argv[1:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
