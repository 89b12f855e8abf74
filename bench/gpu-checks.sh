#!/usr/bin/env bash
# gpu-checks.sh: the checks gdswap needs from a machine with a real GPU, in one run that fits
# one call of the device tool (well under 10 minutes), its results in at most 8 files under OUT.
#
# This project's own machines and CI have no GPU; a session that is lent one runs this once:
#   here:    cargo build --release && mkdir -p .gpu && strip -o .gpu/gdswap target/release/gdswap
#            grep -qx '/.gpu/' .git/info/exclude || echo /.gpu/ >> .git/info/exclude
#   device:  run(command="UDEV_DB=1 bash bench/gpu-checks.sh", carry=[".gpu"], timeout_s=590)
# then reads what came back and commits it to bench-results/<date>-gpu-checks/ (the device has
# no Rust toolchain, so the binary travels; both machines are x86-64).
#
# Steps (each with its own time limit; a failing step is recorded and the others still run):
#   1. the machine: nvidia-smi, the kernel, the data directory's filesystem, libcufile found
#   2. gdswap check (libcuda, libcufile, per-backend verdicts, the GDS path)
#   3. the gds backend with --verify through the sync, stream and batch APIs, write then read;
#      the stream API at queue depth 1 and 8 on one thread (requests in flight, not serial)
#   4. gdswap compare of gds, bounce and host (and fio/gdsio where installed), write and read
#   5. gdswap optim-sim through gds and bounce (several staging buffers on one file)
#   6. gdsio's own output, raw, where gdsio exists (to check gdswap's parser against it)
#   7. the Python module's device paths (bench/gpu-python-checks.py: SwapStore with device
#      memory on bounce and gds, gds_handle, torch CUDA tensors where torch is installed), run
#      after step 3, from a wheel unpacked into .gpu/py (abi3: any CPython >= 3.9):
#            maturin build --release -m python/Cargo.toml -o target/wheels-release
#            rm -rf .gpu/py && python3 -m zipfile -e target/wheels-release/gdswap-*.whl .gpu/py
#
# Environment: GDSWAP (default .gpu/gdswap, else target/release/gdswap), OUT (default
# $PWD/gpu-checks-out, or $OUT as the device tool sets it), DATA (default /tmp/gdswap-gpu-data),
# SIZE (default 2G: the compare's file), BACKENDS (the compare's, default gds,bounce,host, or bounce,host where `gdswap check` says gds cannot run), GPU (default 0), PARAMS and SUB_GROUP (optim-sim,
# default 100M in sub-groups of 10M), GDSWAP_CUFILE_PATH (default: the
# libcufile.so.0 of the image's nvidia-cufile wheel, found under /usr, /opt and Python's paths).
# Locally, against the test fakes (a dry run of the script itself):
#   LD_LIBRARY_PATH=target/tmp/fake-cuda GDSWAP_CUFILE_PATH=target/tmp/cufile-fakes/libcufile-fake-full.so \
#   FAKE_CUFILE_QUIET=1 SIZE=64M PARAMS=20M SUB_GROUP=2M OUT=/tmp/gpu-dry bash bench/gpu-checks.sh
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GDSWAP=${GDSWAP:-}
if [ -z "$GDSWAP" ]; then
    if [ -x "$ROOT/.gpu/gdswap" ]; then GDSWAP=$ROOT/.gpu/gdswap; else GDSWAP=$ROOT/target/release/gdswap; fi
fi
OUT=${OUT:-$PWD/gpu-checks-out}
DATA=${DATA:-/tmp/gdswap-gpu-data}
SIZE=${SIZE:-2G}
GPU=${GPU:-0}
BACKENDS_SET=${BACKENDS:+1}
BACKENDS=${BACKENDS:-gds,bounce,host}
PARAMS=${PARAMS:-100M}
SUB_GROUP=${SUB_GROUP:-10M}
mkdir -p "$OUT" "$DATA"
LOG=$OUT/log.txt
: >"$LOG"

say() { echo "$*" | tee -a "$LOG"; }

# The whole run ends by BUDGET_S (default 540 s: one device call is at most 600 s), so what ran
# comes back: each step's limit is cut to the time left, and a step with under 15 s left is
# skipped and says so. The steps run in order of value: what only a GPU can tell first.
BUDGET_S=${BUDGET_S:-540}
DEADLINE=$((SECONDS + BUDGET_S))

# step NAME LIMIT_S CMD...: runs CMD with a time limit, its output into the log, its status noted.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((DEADLINE - SECONDS))
    if [ "$left" -lt 15 ]; then
        say ""
        say "=== $name: skipped (the run's budget of ${BUDGET_S}s is spent)"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say ""
    say "=== $name ($(date -u +%T)): $*"
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    say "=== $name: exit status $rc$([ $rc -eq 124 ] && echo ' (timed out)')"
    return 0
}

if [ ! -x "$GDSWAP" ]; then
    say "gpu-checks: no gdswap binary at $GDSWAP (build it and copy it to .gpu/gdswap first)"
    exit 1
fi
if [ -z "${GDSWAP_CUFILE_PATH:-}" ]; then
    dirs=(/usr /opt)
    while IFS= read -r p; do [ -d "$p" ] && dirs+=("$p"); done < <(python3 -c 'import sys; print("\n".join(sys.path))' 2>/dev/null)
    found=$(find "${dirs[@]}" -name 'libcufile.so.0' 2>/dev/null | head -n 1)
    [ -n "$found" ] && export GDSWAP_CUFILE_PATH=$found
fi

say "gpu-checks: $(date -u +%FT%TZ), gdswap $("$GDSWAP" --version 2>&1), git $(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo '?')"
say "kernel $(uname -r), $(nproc) CPUs; data in $DATA on $(df -T "$DATA" | awk 'NR==2 {print $2" ("$1")"}')"
say "GDSWAP_CUFILE_PATH=${GDSWAP_CUFILE_PATH:-(not found; the loader tries its default names)}"
step nvidia-smi 30 nvidia-smi
step gds-mounts 10 sh -c 'lsmod 2>/dev/null | grep -i nvidia; grep -i nvidia_fs /proc/modules; cat /proc/driver/nvidia-fs/stats 2>&1 | head -20; ls -l /etc/cufile.json 2>&1; df -hT /tmp /dev/shm 2>&1; lsblk -o NAME,SIZE,ROTA,TYPE,MOUNTPOINT 2>&1 | head -20'
GDSCHECK=$(command -v gdscheck || ls /usr/local/cuda/gds/tools/gdscheck 2>/dev/null)
[ -n "$GDSCHECK" ] && step gdscheck 30 "$GDSCHECK" -p

# cuFile reads the volume attributes of a file's block device (ID_FS_USAGE, ID_FS_TYPE) from
# the udev database, /run/udev/data/b<major>:<minor>. A VM without a udev daemon has no such
# database, and there every cuFileHandleRegister fails with 5027, compat mode too (H200 VM,
# 2026-12-04: "cufio-udev:67 udev property not found: ID_FS_USAGE vda"; libudev itself loads:
# a libudev.so symlink changed nothing). UDEV_DB=1 (as root, and only where /run/udev does
# not exist: a real udev database is never touched) runs check once as the machine is, then
# writes the one entry udev's blkid builtin would have written for the data directory's device
# and removes /run/udev again at the end, so the gds steps can run; the log shows both checks.
UDEV_DB=${UDEV_DB:-0}
UDEV_CREATED=
step udev 15 sh -c 'ldconfig -p | grep -i libudev; ls -l /sys/dev/block | head -5; ls /run/udev/data 2>&1 | head -3'
if [ "$UDEV_DB" = 1 ] && [ "$(id -u)" = 0 ] && [ ! -e /run/udev ]; then
    step check-without-udev-db 60 "$GDSWAP" check --path "$DATA" --open-driver \
        --json "$OUT/check-without-udev-db.json"
    devno=$(stat -c '%Hd:%Ld' "$DATA")
    fstype=$(findmnt -no FSTYPE -T "$DATA")
    mkdir -p /run/udev/data && UDEV_CREATED=1
    trap '[ -n "$UDEV_CREATED" ] && rm -rf /run/udev' EXIT
    printf 'E:ID_FS_USAGE=filesystem\nE:ID_FS_TYPE=%s\n' "$fstype" >"/run/udev/data/b$devno"
    say "udev: no udev database here; wrote /run/udev/data/b$devno (ID_FS_USAGE=filesystem, ID_FS_TYPE=$fstype) for the later steps"
fi

# 2. check
step check 120 "$GDSWAP" check --path "$DATA" --open-driver --json "$OUT/check.json"
# Where check says gds cannot run on this path (e.g. cuFile registers no file here), the
# compare runs the other two rather than failing in its first round.
if [ -z "$BACKENDS_SET" ] && [ -f "$OUT/check.json" ] && python3 - "$OUT/check.json" <<'PY'
import json, sys
v = [x for x in json.load(open(sys.argv[1]))["verdicts"] if x["backend"] == "gds"]
sys.exit(0 if v and not v[0]["available"] else 1)
PY
then
    BACKENDS=bounce,host
    say "compare: gds is unavailable here (check.json), so the compare runs $BACKENDS"
fi

# 3. gds APIs, verified (small: this is about correctness on the real library)
GDS_RUNS=$OUT/gds-runs.jsonl
: >"$GDS_RUNS"
for api in sync stream batch; do
    for op in write read; do
        step "gds-$api-$op" 45 "$GDSWAP" run --backend gds --gds-api "$api" --op "$op" \
            --file "$DATA/gds.dat" --size 1G --block-size 1M --queue-depth 8 --threads 2 \
            --loops 2 --warmup 1 --gpu "$GPU" --verify --json "$OUT/tmp.json"
        [ -f "$OUT/tmp.json" ] && { tr -d '\n' <"$OUT/tmp.json"; echo; } >>"$GDS_RUNS"
        rm -f "$OUT/tmp.json"
    done
done
# Stream queue depth means requests in flight (one registered stream per slot): one thread,
# queue depth 1 then 8, reads of 1 MiB; qd 8 should move more per second with per-request
# latencies near qd 1's (a single stream would show 8x the latency and the same bandwidth).
for qd in 1 8; do
    step "gds-stream-qd$qd" 45 "$GDSWAP" run --backend gds --gds-api stream --op read \
        --file "$DATA/gds.dat" --size 1G --block-size 1M --queue-depth "$qd" --threads 1 \
        --loops 2 --warmup 1 --gpu "$GPU" --json "$OUT/tmp.json"
    [ -f "$OUT/tmp.json" ] && { tr -d '\n' <"$OUT/tmp.json"; echo; } >>"$GDS_RUNS"
    rm -f "$OUT/tmp.json"
done
# 7. the Python module on the device (short; before the long steps)
if [ -d "$ROOT/.gpu/py" ] && command -v python3 >/dev/null; then
    mkdir -p "$DATA/py"
    step python 90 env PYTHONPATH="$ROOT/.gpu/py" python3 "$ROOT/bench/gpu-python-checks.py" "$DATA/py" "$GPU"
else
    say "python: skipped (no .gpu/py wheel or no python3)"
fi
# An unaligned size: the tail goes through the buffered fd, verified.
step gds-unaligned 45 "$GDSWAP" run --backend gds --op write --file "$DATA/odd.dat" \
    --size 10000001 --gpu "$GPU" --verify
for op in write read; do
    step "bounce-verify-$op" 60 "$GDSWAP" run --backend bounce --op "$op" --file "$DATA/bounce.dat" \
        --size 1G --gpu "$GPU" --verify
done

# 4. the A/B the project exists for: same file, interleaved rounds (the write creates it)
for op in write read; do
    step "compare-$op" 150 "$GDSWAP" compare --backends "$BACKENDS" --peers fio,gdsio \
        --op "$op" --file "$DATA/compare.dat" --size "$SIZE" --rounds 3 --gpu "$GPU" \
        --json "$OUT/compare-$op.json"
done

# 5. the swap store on the GPU backends: 4 I/O threads and 3 sub-groups in flight each way,
# so several staging buffers (each with its own device buffer) share each store's one data
# file, and its one cuFile registration (real cuFile refuses a second one: 5028)
for b in gds bounce; do
    step "optim-sim-$b" 120 "$GDSWAP" optim-sim --dir "$DATA/osim-$b" --backend "$b" --gpu "$GPU" \
        --params "$PARAMS" --sub-group-size "$SUB_GROUP" --steps 2 --io-threads 4 --buffers 3
done

# 6. gdsio raw, where the GDS tools exist
GDSIO=$(command -v gdsio || ls /usr/local/cuda/gds/tools/gdsio 2>/dev/null)
if [ -n "$GDSIO" ]; then
    for x in 0 2; do
        step "gdsio-x$x" 60 sh -c "'$GDSIO' -f '$DATA/compare.dat' -d $GPU -w 4 -s 1G -i 1024K -x $x -I 0 2>&1 | tee -a '$OUT/gdsio.txt'"
    done
else
    say "gdsio: not found (no GDS tools on this machine)"
fi
rm -rf "$DATA"
say ""
say "gpu-checks: done $(date -u +%T); files: $(ls "$OUT" | tr '\n' ' ')"
