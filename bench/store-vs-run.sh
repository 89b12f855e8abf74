#!/usr/bin/env bash
# store-vs-run.sh: the swap store's I/O rate against `gdswap run` on the same bytes, block size
# and queue depth (host backend, O_DIRECT, 1 MiB requests, queue depth 8).
#
# Each pair, alternating which goes first: examples/store_bench swaps COUNT tensors of
# SIZE_MIB out (durable: fdatasync + manifest commit, as every swap-out) and back in (CRC-32C
# checked), ROUNDS rounds after a warm-up; `gdswap run --op write` then `--op read` moves the
# same COUNT x SIZE_MIB with --buffer full (a destination the size of the data, as the
# store's staging is) and one warm-up loop. Ratios store/run per pair, medians.
#
# Usage: bench/store-vs-run.sh OUT_DIR [PAIRS]   (env: COUNT=8 SIZE_MIB=128 ROUNDS=2 DATA_DIR)
# Output: OUT_DIR/README.md, OUT_DIR/raw/ (each run's output).
set -Eeuo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
OUT=${1:?usage: bench/store-vs-run.sh OUT_DIR [PAIRS]}
PAIRS=${2:-3}
COUNT=${COUNT:-8}; SIZE_MIB=${SIZE_MIB:-128}; ROUNDS=${ROUNDS:-2}
DATA_DIR=${DATA_DIR:-$PWD/gdswap-data/store-vs-run}
GDSWAP=$REPO_ROOT/target/release/gdswap
BENCH=$REPO_ROOT/target/release/examples/store_bench
[[ -x $GDSWAP && -x $BENCH ]] || { echo "store-vs-run: build first: cargo build --release --bin gdswap --example store_bench" >&2; exit 1; }
[[ -e $OUT/README.md ]] && { echo "store-vs-run: $OUT already holds results" >&2; exit 1; }
mkdir -p "$OUT/raw" "$DATA_DIR"
BYTES=$((COUNT * SIZE_MIB))M
RUN_FILE=$DATA_DIR/run.dat
trap 'rm -f -- "$RUN_FILE"; rm -rf -- "$DATA_DIR/store"' EXIT
store() { rm -rf -- "$DATA_DIR/store"; "$BENCH" "$DATA_DIR/store" "$COUNT" "$SIZE_MIB" "$ROUNDS" >"$OUT/raw/pair$1-store.jsonl"; }
runs() {
    for op in write read; do
        "$GDSWAP" run --backend host --op $op --file "$RUN_FILE" --size "$BYTES" --block-size 1M \
            --queue-depth 8 --loops "$ROUNDS" --warmup 1 --json "$OUT/raw/pair$1-run-$op.json" \
            >"$OUT/raw/pair$1-run-$op.log" 2>&1
    done
}
for ((p = 1; p <= PAIRS; p++)); do
    if ((p % 2)); then store $p; runs $p; else runs $p; store $p; fi
    echo "store-vs-run: pair $p/$PAIRS done"
done
python3 - "$OUT" "$PAIRS" "$COUNT" "$SIZE_MIB" "$ROUNDS" "$("$GDSWAP" --version)" <<'PY'
import json, os, statistics, sys
out, pairs, count, mib, rounds, version = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
GB = 1e9
rows = []
for p in range(1, pairs + 1):
    st = [json.loads(l) for l in open(f"{out}/raw/pair{p}-store.jsonl")]
    rate = {ph: sum(x["bytes"] for x in st if x["phase"] == ph) / sum(x["seconds"] for x in st if x["phase"] == ph) / GB
            for ph in ("swap_out", "swap_in")}
    run = {op: json.load(open(f"{out}/raw/pair{p}-run-{op}.json"))["summary"]["bandwidth_gibps"] * 2**30 / GB
           for op in ("write", "read")}
    rows.append((p, rate["swap_out"], run["write"], rate["swap_in"], run["read"]))
med = lambda i: statistics.median(r[i] for r in rows)
ratio = lambda a, b: statistics.median(r[a] / r[b] for r in rows)
lines = [f"# Swap store I/O vs `gdswap run`, same bytes ({count} x {mib} MiB), 1 MiB requests, qd 8", "",
         f"gdswap `{version}`; `bench/store-vs-run.sh`, {pairs} pairs alternating; store: "
         f"examples/store_bench ({rounds} rounds after a warm-up; swap-out = durable, swap-in = CRC-checked); "
         "run: `gdswap run --buffer full` write then read, 1 warm-up loop.", "",
         "| pair | store swap-out GB/s | run write GB/s | store swap-in GB/s | run read GB/s |",
         "|---|---:|---:|---:|---:|"]
lines += [f"| {p} | {a:.2f} | {b:.2f} | {c:.2f} | {d:.2f} |" for p, a, b, c, d in rows]
lines += ["", f"Median ratio store/run: swap-out/write **{ratio(1, 2):.3f}**, swap-in/read **{ratio(3, 4):.3f}** (goal >= 0.9)."]
open(f"{out}/README.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines[-1:]))
PY
