#!/usr/bin/env python3
"""Report of bench/fio-vs-fio.sh: per run, the median of the per-pair bandwidth ratios
fio(B)/fio(A) for reads and writes, judged as fio-vs-host.sh judges gdswap/fio (>= 1.0).

Usage: fio_vs_fio.py OUT RUNS PAIRS   (reads OUT/raw/, writes OUT/results.json, OUT/README.md)
"""

import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fio_vs_host import Fail, fio_figures  # noqa: E402  (the same parser as fio-vs-host.sh)

OPS = ("read", "write")


def main(out, runs, pairs):
    raw = os.path.join(out, "raw")
    result = {"schema": "gdswap.fio-vs-fio.v1", "runs": []}
    for run in range(1, runs + 1):
        per_op = {}
        for op in OPS:
            ratios, a_bw, b_bw = [], [], []
            for pair in range(1, pairs + 1):
                fig = {s: fio_figures(os.path.join(raw, f"run{run}-pair{pair}-{op}-{s}.json"), op)
                       for s in ("A", "B")}
                a_bw.append(fig["A"]["bandwidth_gibps"])
                b_bw.append(fig["B"]["bandwidth_gibps"])
                ratios.append(fig["B"]["bandwidth_gibps"] / fig["A"]["bandwidth_gibps"])
            med = statistics.median(ratios)
            per_op[op] = {
                "ratios": ratios,
                "median_ratio": med,
                "min_ratio": min(ratios),
                "max_ratio": max(ratios),
                "a_median_gibps": statistics.median(a_bw),
                "b_median_gibps": statistics.median(b_bw),
                "passes": med >= 1.0,
            }
        per_op["passes_both"] = all(per_op[op]["passes"] for op in OPS)
        result["runs"].append(per_op)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)

    env = open(os.path.join(raw, "env.txt")).read().strip().splitlines()
    params = dict(kv.split("=", 1) for line in env if line.startswith("size=") for kv in line.split())
    command = (f"sudo DATA_DIR={params.get('data_dir', '?')} SIZE={params.get('size', '?')} "
               f"PAIRS={params.get('pairs', '?')} RUNS={params.get('runs', '?')} "
               f"bench/fio-vs-fio.sh {out}")
    lines = [
        "# fio against itself (A/A): how far fio-vs-host.sh's verdict moves at parity",
        "",
        "`bench/fio-vs-fio.sh`: fio-vs-host.sh's schedule and fio command (io_uring, O_DIRECT, "
        "1 MiB, QD 8, 1 job, 1 warm-up + 3 measured loops, hugetlb buffers, caches dropped "
        "before each run, order alternating per pair) with **fio on both sides**. The ratio is "
        "fio(B) / fio(A) per pair; a run \"passes\" as fio-vs-host.sh's goal does: median >= 1.0 "
        "for reads and for writes.",
        "",
        f"Command: `{command}`",
        "",
        *[f"- {e}" for e in env],
        "",
        "| run | read median (min-max) | write median (min-max) | read A / B GiB/s | write A / B GiB/s | passes both |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for i, r in enumerate(result["runs"], 1):
        cells = [f"{r[op]['median_ratio']:.3f} ({r[op]['min_ratio']:.2f}-{r[op]['max_ratio']:.2f})"
                 for op in OPS]
        bws = [f"{r[op]['a_median_gibps']:.2f} / {r[op]['b_median_gibps']:.2f}" for op in OPS]
        lines.append(f"| {i} | {cells[0]} | {cells[1]} | {bws[0]} | {bws[1]} | "
                     f"{'yes' if r['passes_both'] else 'no'} |")
    n_pass = sum(r["passes_both"] for r in result["runs"])
    lines += ["", f"Runs passing both directions: {n_pass} of {len(result['runs'])}.",
              "", "See docs/benchmarks.md (bench/fio-vs-fio.sh) for how to read this against "
              "bench/fio-vs-host.sh's verdicts.", ""]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[-(len(result['runs']) + 4):]))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    except Fail as e:
        sys.exit(f"fio-vs-fio: error: {e}")
