#!/usr/bin/env bash
# bounce-vs-host.sh: the bounce backend (pipelined and serial) against the host backend on the
# same data file, in the same run, alternating, to show what the pipeline buys.
#
# Without a GPU it runs against the fake libcuda of the tests (tests/fakes/fake_cuda.c, built
# here with cc), whose copies run at FAKE_CUDA_COPY_GBPS; by default that is set to 4.5x the
# disk bandwidth measured by a first host run, so the copies are not the bottleneck (the
# issue's goal: pipelined bounce reads at >= 0.9x host, serial visibly slower). With --real
# it uses the system's libcuda (a real GPU) instead, and records the device gdswap reports.
#
# Every run: sequential read, block size 1M, queue depth 8, 1 thread, 1 warm-up + LOOPS
# measured loops over the file, O_DIRECT; --verify on the first round only (untimed anyway).
# Each round runs host, bounce pipelined and bounce serial, rotating which goes first.
#
# With --no-data the fake's copies take their time but move no bytes
# (FAKE_CUDA_COPY_NO_DATA=1): on a small machine the fake's memcpy otherwise competes with the
# I/O path for CPU and memory bandwidth, which a GPU's DMA engine does not; no run verifies then.
#
# Usage: bench/bounce-vs-host.sh [--real] [--no-data] [--size 1G] [--rounds 5] [--loops 3]
#                                [--gbps X] [--data-dir DIR] [--out DIR]
# Output: OUT/README.md (table and verdict), OUT/results.json, OUT/raw/*.json (gdswap's own).
# Exit status: 0 when the comparison ran (whatever the verdict), 1 on failure, 2 bad usage.

set -Eeuo pipefail
PROG=bounce-vs-host
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
DATE_UTC=$(date -u +%F)
COMMAND="bench/bounce-vs-host.sh $*"

REAL=0
NO_DATA=0
SIZE=1G
ROUNDS=5
LOOPS=3
GBPS=
DATA_DIR=$PWD/gdswap-data/bench
OUT=

die() { echo "$PROG: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^# Exit status/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --real) REAL=1; shift ;;
        --no-data) NO_DATA=1; shift ;;
        --size) SIZE=${2:?--size needs a value}; shift 2 ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
        --loops) LOOPS=${2:?--loops needs a value}; shift 2 ;;
        --gbps) GBPS=${2:?--gbps needs a value}; shift 2 ;;
        --data-dir) DATA_DIR=${2:?--data-dir needs a value}; shift 2 ;;
        --out) OUT=${2:?--out needs a value}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "$PROG: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "$PROG: error: --rounds must be a positive whole number" >&2; exit 2; }
[[ $LOOPS =~ ^[1-9][0-9]*$ ]] || { echo "$PROG: error: --loops must be a positive whole number" >&2; exit 2; }
[[ -z $GBPS || $GBPS =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "$PROG: error: --gbps must be a number (GB/s)" >&2; exit 2; }
command -v python3 >/dev/null || die "python3 not found"

KIND=fake
[[ $NO_DATA == 1 ]] && KIND=fake-nodata
[[ $REAL == 1 ]] && KIND=gpu
[[ $REAL == 1 && $NO_DATA == 1 ]] && { echo "$PROG: error: --no-data applies to the fake only" >&2; exit 2; }
OUT=${OUT:-$REPO_ROOT/bench-results/$DATE_UTC-bounce-vs-host-$KIND}
[[ -e $OUT/results.json ]] && die "$OUT already holds results; pass --out elsewhere"
mkdir -p "$OUT/raw" "$DATA_DIR" || die "cannot create $OUT/raw or $DATA_DIR"

echo "$PROG: building gdswap (cargo build --release) ..."
(cd "$REPO_ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
GDSWAP=$REPO_ROOT/target/release/gdswap

FAKE_DIR=
if [[ $REAL == 0 ]]; then
    FAKE_DIR=$(mktemp -d)
    trap 'rm -rf -- "$FAKE_DIR"' EXIT
    cc -shared -fPIC -O2 -pthread -fvisibility=hidden -Wl,-soname,libcuda.so.1 \
        -o "$FAKE_DIR/libcuda.so.1" "$REPO_ROOT/tests/fakes/fake_cuda.c" || die "cannot build the fake libcuda"
    export LD_LIBRARY_PATH=$FAKE_DIR
fi
"$GDSWAP" backends | grep -q '^bounce .* available$' || { "$GDSWAP" backends >&2; die "the bounce backend is not available"; }

DROP=()
if [[ $(id -u) == 0 ]] && [[ -w /proc/sys/vm/drop_caches ]]; then DROP=(--drop-caches); fi
FILE=$DATA_DIR/bounce-vs-host.dat
COMMON=(--op read --file "$FILE" --size "$SIZE" --block-size 1M --queue-depth 8 --threads 1 --loops "$LOOPS" --warmup 1)

# The data file, written with the pattern (through the host backend).
"$GDSWAP" run --backend host --op write --file "$FILE" --size "$SIZE" --block-size 1M --loops 1 --warmup 0 >/dev/null \
    || die "cannot write $FILE"

if [[ $REAL == 0 && -z $GBPS ]]; then
    "$GDSWAP" run --backend host --fixed-buffers off "${COMMON[@]}" "${DROP[@]}" --json "$OUT/raw/calibration-host.json" >/dev/null
    GBPS=$(python3 -c 'import json,sys; print(round(4.5 * json.load(open(sys.argv[1]))["summary"]["bandwidth_gbps"], 2))' \
        "$OUT/raw/calibration-host.json") || die "cannot read the calibration run"
fi
[[ $REAL == 0 ]] && export FAKE_CUDA_COPY_GBPS=$GBPS
[[ $NO_DATA == 1 ]] && export FAKE_CUDA_COPY_NO_DATA=1

CONFIGS=(host pipelined serial)
for ((round = 0; round < ROUNDS; round++)); do
    VERIFY=()
    ((round == 0 && NO_DATA == 0)) && VERIFY=(--verify)
    for ((i = 0; i < 3; i++)); do
        c=${CONFIGS[$(((round + i) % 3))]}
        case $c in
            # Like for like: bounce's pinned chunks are not registered with io_uring.
            host) args=(--backend host --fixed-buffers off) ;;
            pipelined) args=(--backend bounce --bounce-mode pipelined) ;;
            serial) args=(--backend bounce --bounce-mode serial) ;;
        esac
        echo "$PROG: round $((round + 1))/$ROUNDS: $c"
        "$GDSWAP" run "${args[@]}" "${COMMON[@]}" "${DROP[@]}" "${VERIFY[@]}" \
            --json "$OUT/raw/round$round-$c.json" >"$OUT/raw/round$round-$c.txt" 2>&1 \
            || { cat "$OUT/raw/round$round-$c.txt" >&2; die "run '$c' failed"; }
    done
done
rm -f -- "$FILE"

python3 - "$OUT" "$ROUNDS" "$KIND" "${GBPS:-}" "$SIZE" "$LOOPS" "${DROP[*]:-}" "$COMMAND" <<'PY'
import json, statistics, sys
out, rounds, kind, gbps, size, loops, drop, command = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
def load(p):
    return json.load(open(p))  # one gdswap.run.v1 report
runs = {c: [load(f"{out}/raw/round{r}-{c}.json") for r in range(rounds)] for c in ("host", "pipelined", "serial")}
bw = {c: [r["summary"]["bandwidth_gibps"] for r in rs] for c, rs in runs.items()}
ratio = {c: [b / h for b, h in zip(bw[c], bw["host"])] for c in ("pipelined", "serial")}
med = {c: statistics.median(v) for c, v in bw.items()}
rmed = {c: statistics.median(v) for c, v in ratio.items()}
ovl = [r.get("pipeline", {}).get("overlap_fraction", 0) for r in runs["pipelined"]]
env = runs["host"][0]["environment"]
goal_pipe = rmed["pipelined"] >= 0.9
goal_serial = med["serial"] < med["pipelined"]
verdict = "PASS" if goal_pipe and goal_serial else "FAIL"
res = {"command": command, "kind": kind, "copy_gbps": float(gbps) if gbps else None, "size": size, "loops": int(loops),
       "rounds": rounds, "bandwidth_gibps": bw, "ratio_to_host": ratio, "median_gibps": med,
       "median_ratio_to_host": rmed, "pipelined_overlap_fraction": ovl, "verdict": verdict,
       "backend_mode": {c: rs[0]["backend_mode"] for c, rs in runs.items()}, "environment": env}
json.dump(res, open(f"{out}/results.json", "w"), indent=2)
lines = [f"# bounce vs host ({'real GPU' if kind == 'gpu' else 'fake libcuda'}), {runs['host'][0]['finished_at'][:10]}", "",
  f"Machine: {env['hostname']}, {env['cpu_model']} ({env['cpus']} CPUs), kernel {env['kernel']}; data on {env['filesystem']['device']} ({env['filesystem']['fs_type']}).",
  f"gdswap {env['gdswap_version']} ({env['git_commit']}). Sequential read, 1 MiB blocks, QD 8, 1 thread, {size} file, {loops} measured loops per run, {rounds} rounds rotating the order; page cache dropped before each loop: {'yes' if drop else 'no'}.",
  (f"Copies by the fake libcuda at {gbps} GB/s (4.5x the calibration host run unless --gbps was given)" + (", moving no data (--no-data: no verification)." if kind == "fake-nodata" else ", round 1 verified.") if kind != "gpu" else "Device: see backend_mode below; round 1 verified."), "",
  "| config | " + " | ".join(f"round {i+1}" for i in range(rounds)) + " | median GiB/s | median ratio to host |",
  "|---|" + "---|" * (rounds + 2)]
for c in ("host", "pipelined", "serial"):
    r = f"{rmed[c]:.3f}" if c in rmed else "1"
    lines.append(f"| {c} | " + " | ".join(f"{b:.2f}" for b in bw[c]) + f" | {med[c]:.2f} | {r} |")
lines += ["", f"Pipelined overlap (fraction of the shorter stage hidden), per round: {', '.join(f'{o:.2f}' for o in ovl)}.", "",
  f"Goal: pipelined >= 0.9x host (median ratio {rmed['pipelined']:.3f}: {'met' if goal_pipe else 'missed'}); serial slower than pipelined ({'yes' if goal_serial else 'no'}). Verdict: **{verdict}**.", "",
  "Modes:"] + [f"- {c}: `{m}`" for c, m in res["backend_mode"].items()] + ["",
  f"Command: `{command}` (from the repository root). Raw gdswap JSON and text output of every run in `raw/`."]
open(f"{out}/README.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
