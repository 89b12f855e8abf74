#!/usr/bin/env bash
# store-vs-run.sh: the swap store's I/O rate against `gdswap run` on the same bytes, block size
# and queue depth (host backend, O_DIRECT, 1 MiB requests, queue depth 8).
#
# Each pair, alternating which goes first: examples/store_bench swaps COUNT tensors of
# SIZE_MIB out (durable: fdatasync + manifest commit, as every swap-out) and back in (CRC-32C
# checked), ROUNDS rounds after two warm-up rounds (which write each tensor's extent and its spare: from then on swap-outs overwrite, as run's measured loops do), twice: `staged` (staged tensors: the store's own
# I/O, no copy, as ZeRO-Infinity computes in its swap buffers) and `copy` (ordinary host
# tensors: plus a memcpy into staging on swap-out and out of it on swap-in, on the caller's
# thread), and `staged-noverify` (staged, swap-ins without the CRC-32C check: the store's I/O
# alone; the check is CPU work, and on a VM whose disk shares the guest's CPUs it slows the
# disk, see bench/busy-cpu-vs-read.sh); `gdswap run --op write` then `--op read` moves the same COUNT x SIZE_MIB with
# --buffer full (a destination the size of the data, as the store's staging is) and one
# warm-up loop. Ratios store/run per pair, medians.
#
# Like for like on writes: a swap-out is durable when its ticket completes (its fdatasync is
# inside its time), `run --op write` reports its final fdatasync apart from its bandwidth. So
# after its write run, ROUNDS more `run --op write --loops 1 --warmup 0` over the same file
# write one round's bytes and fdatasync them, as one round of swap-outs does; the write ratio
# divides by their median rate, bytes over (write time + fdatasync). The table also shows
# the ratio against the multi-loop run's bandwidth without any fdatasync.
#
# Like for like on buffers: the store's staging is never registered with io_uring, so `run`
# runs with `--fixed-buffers off` (its default, auto, registers them as root; the two
# registered runs of session 9 are marked so in the bench-results index).
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
store() { # PAIR MODE: staged, copy, or staged-noverify (swap-ins without the CRC-32C check)
    rm -rf -- "$DATA_DIR/store"
    local mode=${2%-noverify} check=verify
    [[ $2 == *-noverify ]] && check=noverify
    "$BENCH" "$DATA_DIR/store" "$COUNT" "$SIZE_MIB" "$ROUNDS" 2 "$mode" "$check" >"$OUT/raw/pair$1-store-$2.jsonl"
}
runs() {
    for op in write read; do
        "$GDSWAP" run --backend host --fixed-buffers off --op $op --file "$RUN_FILE" --size "$BYTES" --block-size 1M \
            --queue-depth 8 --loops "$ROUNDS" --warmup 1 --json "$OUT/raw/pair$1-run-$op.json" \
            >"$OUT/raw/pair$1-run-$op.log" 2>&1
        if [[ $op == write ]]; then
            # A round's worth made durable, as one round of swap-outs is: one loop over the
            # file the run above wrote, then its fdatasync.
            for ((r = 1; r <= ROUNDS; r++)); do
                "$GDSWAP" run --backend host --fixed-buffers off --op write --file "$RUN_FILE" --size "$BYTES" \
                    --block-size 1M --queue-depth 8 --loops 1 --warmup 0 \
                    --json "$OUT/raw/pair$1-run-write-durable$r.json" \
                    >"$OUT/raw/pair$1-run-write-durable$r.log" 2>&1
            done
        fi
    done
}
for ((p = 1; p <= PAIRS; p++)); do
    if ((p % 2)); then
        store $p staged; store $p staged-noverify; store $p copy; runs $p
    else
        runs $p; store $p copy; store $p staged-noverify; store $p staged
    fi
    echo "store-vs-run: pair $p/$PAIRS done"
done
python3 - "$OUT" "$PAIRS" "$COUNT" "$SIZE_MIB" "$ROUNDS" "$("$GDSWAP" --version)" "$(uptime)" <<'PY'
import json, statistics, sys
out, pairs, count, mib, rounds, version, load = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
GB = 1e9
rows = []
for p in range(1, pairs + 1):
    rate = {}
    for mode in ("staged", "staged-noverify", "copy"):
        st = [json.loads(l) for l in open(f"{out}/raw/pair{p}-store-{mode}.jsonl")]
        for ph in ("swap_out", "swap_in"):
            rate[mode, ph] = sum(x["bytes"] for x in st if x["phase"] == ph) / sum(x["seconds"] for x in st if x["phase"] == ph) / GB
    run = {op: json.load(open(f"{out}/raw/pair{p}-run-{op}.json"))["summary"] for op in ("write", "read")}
    w = run["write"]
    rows.append({"pair": p, **{f"{m}_{ph}": v for (m, ph), v in rate.items()},
                 "write": w["bandwidth_gibps"] * 2**30 / GB,
                 "write_durable": statistics.median(
                     d["bytes"] / (d["task_time_s"] + d["sync_time_s"]) / GB
                     for d in (json.load(open(f"{out}/raw/pair{p}-run-write-durable{r}.json"))["summary"]
                               for r in range(1, int(rounds) + 1))),
                 "read": run["read"]["bandwidth_gibps"] * 2**30 / GB})
ratio = lambda a, b: statistics.median(r[a] / r[b] for r in rows)
lines = [f"# Swap store I/O vs `gdswap run`, same bytes ({count} x {mib} MiB), 1 MiB requests, qd 8", "",
         f"gdswap `{version}`; `bench/store-vs-run.sh`, {pairs} pairs alternating which goes first; store: "
         f"examples/store_bench, 2 I/O threads ({rounds} rounds after two warm-up rounds, which write each tensor's two extents; swap-out = durable, swap-in = CRC-32C checked), "
         "`staged` (staged tensors, no copy), `staged-noverify` (the same, swap-ins without the CRC-32C check: the store's I/O alone) and `copy` (ordinary host tensors, memcpy through staging); "
         "run: `gdswap run --buffer full` write then read, 1 warm-up loop. "
         "Run's durable write rate: `run --loops 1 --warmup 0` over the file it just wrote (one round's bytes, as one round of swap-outs), bytes over (write time + its fdatasync), median of ROUNDS such runs. GB = 10^9 bytes.",
         f"Load when the script ended: `{load.strip()}`.", "",
         "| pair | staged swap-out | copy swap-out | run write (durable) | run write (no sync) | staged swap-in | staged swap-in, no check | copy swap-in | run read |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
lines += [f"| {r['pair']} | {r['staged_swap_out']:.2f} | {r['copy_swap_out']:.2f} | {r['write_durable']:.2f} | {r['write']:.2f} | "
          f"{r['staged_swap_in']:.2f} | {r['staged-noverify_swap_in']:.2f} | {r['copy_swap_in']:.2f} | {r['read']:.2f} |" for r in rows]
lines += ["", "Median ratios (goal: the store's I/O >= 0.9x run):", "",
          "| store | swap-out / run write (durable) | swap-out / run write (no sync) | swap-in / run read |",
          "|---|---:|---:|---:|"]
for m in ("staged", "staged-noverify", "copy"):
    lines.append(f"| {m} | **{ratio(f'{m}_swap_out', 'write_durable'):.3f}** | {ratio(f'{m}_swap_out', 'write'):.3f} | **{ratio(f'{m}_swap_in', 'read'):.3f}** |")
open(f"{out}/README.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines[-4:]))
PY
