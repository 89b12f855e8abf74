#!/usr/bin/env bash
# optim-sim.sh: issue 6's benchmark goal, measured: `gdswap optim-sim` RUNS times on the same
# store directory, each run printing serial and pipelined step times, the pure I/O and pure
# compute baselines, and the ratios; then the median of each ratio over the runs.
#
# Usage: bench/optim-sim.sh [gdswap optim-sim options...]
# Environment: RUNS (default 3), DIR (store directory, default ./gdswap-data/osim-bench; removed
# afterwards), OUT (default bench-results/<UTC date>-optim-sim-host), GDSWAP (default
# target/release/gdswap, built if absent).
# Default workload: --params 250M --sub-group-size 25M --steps 3 (3 GB of state on disk).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
RUNS=${RUNS:-3}
DIR=${DIR:-$PWD/gdswap-data/osim-bench}
OUT=${OUT:-$ROOT/bench-results/$(date -u +%F)-optim-sim-host}
GDSWAP=${GDSWAP:-$ROOT/target/release/gdswap}
if [ ! -x "$GDSWAP" ]; then (cd "$ROOT" && cargo build --release); fi
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(--params 250M --sub-group-size 25M --steps 3)
mkdir -p "$OUT"
trap 'rm -rf "$DIR"' EXIT
{
    echo "date (UTC): $(date -u +%FT%TZ)"
    echo "machine: $(hostname), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "store: $DIR on $(df -T "$(dirname "$DIR")" | awk 'NR==2 {print $2" ("$1")"}')"
    echo "gdswap: $("$GDSWAP" --version) ($(git -C "$ROOT" rev-parse --short=12 HEAD))"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"
for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$DIR"
    echo "\$ gdswap optim-sim --dir $DIR ${ARGS[*]}" >"$OUT/run$i.txt"
    "$GDSWAP" optim-sim --dir "$DIR" "${ARGS[@]}" | tee -a "$OUT/run$i.txt"
done
python3 - "$OUT" "$RUNS" <<'PY' | tee "$OUT/summary.txt"
import re, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
bound, serial = [], []
for i in range(1, runs + 1):
    t = open(f"{out}/run{i}.txt").read()
    m = re.search(r"pipelined step is ([\d.]+)x max\(I/O, compute\).*; ([\d.]+)x faster than serial", t)
    bound.append(float(m.group(1))); serial.append(float(m.group(2)))
print(f"runs: {runs}")
print(f"pipelined / max(pure I/O, pure compute): {', '.join(map(str, bound))}; median {statistics.median(bound):.2f} (goal <= 1.05, issue 11; issue 6 asked <= 1.15)")
print(f"serial / pipelined: {', '.join(map(str, serial))}; median {statistics.median(serial):.2f}")
PY
