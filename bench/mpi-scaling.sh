#!/usr/bin/env bash
# mpi-scaling.sh: how `gdswap run` scales with the number of MPI ranks on this node: writes,
# then reads, as 1, 2 and 3 ranks (`mpirun -np N`), each rank on its own files (`--dir D`
# becomes D/rank<N>), O_DIRECT, the page cache dropped before each measured loop when run as
# root (`--drop-caches`; without root the reads may be served from the page cache and the
# table says so). Every run's merged JSON (rank 0's) is kept.
#
# Needs gdswap built with MPI (`cargo build --release --features mpi`; docs/multi-node.md) and
# Open MPI's or MPICH's `mpirun`, and python3 for the table.
#
# Usage: bench/mpi-scaling.sh OUT_DIR [--gdswap PATH] [--data-dir DIR] [--ranks "1 2 3"]
#                             [--size 1G] [--block-size 1M] [--threads 1] [--loops 3]
#                             [--backend host]
#   OUT_DIR         where README.md (the table) and raw/*.json go; created, must be empty
#   --gdswap PATH   the binary (default: target/release/gdswap of this checkout)
#   --data-dir DIR  where the ranks' files go (default: OUT_DIR/data, removed at the end)
#   --size          per rank, all its threads together (gdswap's --size under a launcher)
# Output: OUT_DIR/README.md (Markdown table + the commands), OUT_DIR/raw/{write,read}-np<N>.json.
# Exit status: 0 when every run succeeded, 1 on a failed run, 2 bad usage.

set -Eeuo pipefail
PROG=mpi-scaling
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

GDSWAP=$REPO_ROOT/target/release/gdswap
DATA_DIR=
RANKS="1 2 3"
SIZE=1G
BLOCK_SIZE=1M
THREADS=1
LOOPS=3
BACKEND=host
OUT=

die() { echo "$PROG: error: $*" >&2; exit 1; }
bad() { echo "$PROG: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^# Exit status/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --gdswap) GDSWAP=${2:?--gdswap needs a value}; shift 2 ;;
        --data-dir) DATA_DIR=${2:?--data-dir needs a value}; shift 2 ;;
        --ranks) RANKS=${2:?--ranks needs a value}; shift 2 ;;
        --size) SIZE=${2:?--size needs a value}; shift 2 ;;
        --block-size) BLOCK_SIZE=${2:?--block-size needs a value}; shift 2 ;;
        --threads) THREADS=${2:?--threads needs a value}; shift 2 ;;
        --loops) LOOPS=${2:?--loops needs a value}; shift 2 ;;
        --backend) BACKEND=${2:?--backend needs a value}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        -*) bad "unknown option '$1' (see --help)" ;;
        *) [[ -z $OUT ]] || bad "one OUT_DIR only (got '$OUT' and '$1')"; OUT=$1; shift ;;
    esac
done
[[ -n $OUT ]] || bad "give the output directory (see --help)"
for n in $RANKS; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || bad "--ranks: '$n' is not a positive whole number"
done
[[ $LOOPS =~ ^[1-9][0-9]*$ ]] || bad "--loops must be a positive whole number"
[[ -x $GDSWAP ]] || die "$GDSWAP is not an executable gdswap (build it: cargo build --release --features mpi, or give --gdswap)"
command -v mpirun >/dev/null || die "mpirun not found (apt-get install openmpi-bin)"
command -v python3 >/dev/null || die "python3 not found"
if [[ -e $OUT ]] && [[ -n $(ls -A "$OUT") ]]; then
    die "$OUT is not empty: give a new directory"
fi
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)
OWN_DATA=0
if [[ -z $DATA_DIR ]]; then
    DATA_DIR=$OUT/data
    OWN_DATA=1
fi
mkdir -p "$DATA_DIR"

# Containers often forbid the cross-process memory attach Open MPI's shared-memory transport
# tries first; the ranks exchange only small messages (barriers, the merge), so turn it off
# unless the caller chose.
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
MPI_FLAGS=(--oversubscribe)
GDSWAP_FLAGS=()
if [[ $(id -u) == 0 ]]; then
    MPI_FLAGS+=(--allow-run-as-root)
    GDSWAP_FLAGS+=(--drop-caches)
    CACHES="dropped before every measured loop (root)"
else
    CACHES="NOT dropped (not root): reads may come from the page cache"
fi
# A build without MPI refuses to run under mpirun; say so before the first run.
"$GDSWAP" --version >/dev/null || die "$GDSWAP does not run"

COMMANDS=()
for n in $RANKS; do
    for op in write read; do
        json=$OUT/raw/$op-np$n.json
        cmd=(mpirun "${MPI_FLAGS[@]}" -np "$n" "$GDSWAP" run --backend "$BACKEND" --op "$op"
            --dir "$DATA_DIR/np$n" --create-dir --size "$SIZE" --block-size "$BLOCK_SIZE"
            --threads "$THREADS" --loops "$LOOPS" "${GDSWAP_FLAGS[@]}" --json "$json")
        [[ $op == read ]] && cmd+=(--verify)
        echo "$PROG: ${cmd[*]}" >&2
        COMMANDS+=("${cmd[*]}")
        "${cmd[@]}" >"$OUT/raw/$op-np$n.txt" 2>&1 || {
            cat "$OUT/raw/$op-np$n.txt" >&2
            die "$op with $n rank(s) failed (output above, and in $OUT/raw/$op-np$n.txt)"
        }
    done
done
[[ $OWN_DATA == 1 ]] && rm -rf "$DATA_DIR"

python3 - "$OUT" "$RANKS" "$CACHES" "$SIZE" "$BLOCK_SIZE" "$THREADS" "$LOOPS" "$BACKEND" \
    "$(uname -n)" "$(nproc)" "${COMMANDS[@]}" <<'PY'
import json, os, sys
out, ranks, caches, size, bs, threads, loops, backend, host, cpus = sys.argv[1:11]
commands = sys.argv[11:]
rows = []
for n in ranks.split():
    for op in ("write", "read"):
        with open(os.path.join(out, "raw", f"{op}-np{n}.json")) as f:
            r = json.load(f)
        s = r["summary"]
        per = r.get("ranks") or [{"rank": 0, "bandwidth_gibps": s["bandwidth_gibps"], "straggler": False}]
        rows.append((int(n), op, s["bandwidth_gibps"], s["bytes"], s["task_time_s"],
                     s["latency"]["p99_us"] / 1000.0,
                     " ".join(f"{p['bandwidth_gibps']:.2f}" for p in per),
                     ", ".join(str(p["rank"]) for p in per if p.get("straggler")) or "none"))
lines = [
    "# gdswap under MPI: 1, 2, 3 ranks on one node",
    "",
    f"Host `{host}` ({cpus} CPUs); backend `{backend}`, O_DIRECT, bs {bs}, {threads} thread(s) per rank,",
    f"--size {size} per rank, {loops} measured loops after 1 warm-up; page cache {caches}.",
    "Each rank has its own files (`--dir D` is `D/rank<N>`). `all GiB/s` is every rank's bytes",
    "over the earliest start to the latest end of each loop (the ranks' loops start together at",
    "an MPI barrier); reads are verified. Caveat: on one disk and few cores the ranks share both,",
    "so the table shows the sharing, not a parallel filesystem's scaling.",
    "",
    "| ranks | op | all GiB/s | GiB moved | time s | p99 ms | per rank GiB/s | stragglers |",
    "|---:|---|---:|---:|---:|---:|---|---|",
]
for n, op, gibps, b, t, p99, per, strag in rows:
    lines.append(f"| {n} | {op} | {gibps:.2f} | {b / 2**30:.2f} | {t:.3f} | {p99:.2f} | {per} | {strag} |")
lines += ["", "Commands:", "", "```"] + commands + ["```", ""]
with open(os.path.join(out, "README.md"), "w") as f:
    f.write("\n".join(lines))
print("\n".join(lines))
PY
