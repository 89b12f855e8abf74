#!/usr/bin/env bash
# busy-cpu-vs-read.sh: does CPU work in this machine slow its disk? `gdswap run` reads the same
# 1 GiB file (O_DIRECT, 1 MiB, qd 8, 1 thread, 1 warm-up + LOOPS measured loops) alone, then
# with one shell busy-loop running beside it, PAIRS times, alternating; prints each figure and
# the median ratio. On a VM whose virtual disk is served by host threads that share the
# guest's CPUs, a busy guest CPU slows the disk itself: then any CPU work done during I/O
# (a checksum, a copy) costs bandwidth even on another thread.
#
# Usage: bench/busy-cpu-vs-read.sh OUT_DIR [PAIRS]   (env: DATA_DIR, LOOPS=4)
# Output: OUT_DIR/README.md. Run it with other work stopped.
set -Eeuo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:?usage: bench/busy-cpu-vs-read.sh OUT_DIR [PAIRS]}
PAIRS=${2:-5}
LOOPS=${LOOPS:-4}
DATA_DIR=${DATA_DIR:-$PWD/gdswap-data/busy-cpu}
G=$REPO_ROOT/target/release/gdswap
[[ -x $G ]] || { echo "busy-cpu-vs-read: build first: cargo build --release" >&2; exit 1; }
[[ -e $OUT/README.md ]] && { echo "busy-cpu-vs-read: $OUT already holds results" >&2; exit 1; }
mkdir -p "$OUT" "$DATA_DIR"
F=$DATA_DIR/busy-cpu.dat
HOG=
trap '[[ -n $HOG ]] && kill $HOG 2>/dev/null; rm -f -- "$F"' EXIT
"$G" run --backend host --op write --file "$F" --size 1G --loops 1 --warmup 0 >/dev/null 2>&1
rd() { "$G" run --backend host --op read --file "$F" --size 1G --loops "$LOOPS" --warmup 1 --json - 2>/dev/null |
    python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["summary"]["bandwidth_gibps"])'; }
rows=()
for ((p = 1; p <= PAIRS; p++)); do
    a=$(rd)
    ( while :; do :; done ) & HOG=$!
    b=$(rd)
    kill $HOG; wait $HOG 2>/dev/null || true; HOG=
    rows+=("$p $a $b")
    echo "busy-cpu-vs-read: pair $p: alone $a GiB/s, one CPU busy $b GiB/s"
done
python3 - "$OUT" "$(nproc)" "$("$G" --version)" "$(uname -r)" "${rows[@]}" <<'PY'
import statistics, sys
out, ncpu, version, kernel, *rows = sys.argv[1:]
rows = [r.split() for r in rows]
lines = ["# `gdswap run` read alone vs with one CPU busy", "",
         f"{version}, kernel {kernel}, {ncpu} CPUs; 1 GiB file, O_DIRECT, 1 MiB, qd 8, 1 thread; "
         "produced by `bench/busy-cpu-vs-read.sh` (a shell busy-loop is the busy CPU).", "",
         "| pair | alone GiB/s | one CPU busy GiB/s | ratio |", "|---|---:|---:|---:|"]
lines += [f"| {p} | {a} | {b} | {float(b)/float(a):.3f} |" for p, a, b in rows]
lines += ["", f"Median ratio busy/alone: **{statistics.median(float(b)/float(a) for _, a, b in rows):.3f}**"]
open(f"{out}/README.md", "w").write("\n".join(lines) + "\n")
print(lines[-1])
PY
