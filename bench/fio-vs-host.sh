#!/usr/bin/env bash
# fio-vs-host.sh: gdswap's `host` backend against fio's io_uring engine, side by side.
#
# Sequential read and write, 1 MiB blocks, queue depth 8, 1 thread, one data file (1 GiB by
# default). For each of PAIRS pairs, alternating which tool goes first, it runs fio then gdswap
# (or gdswap then fio) on reads, then the same on writes; every run is 1 warm-up loop plus 3
# measured loops over the file, O_DIRECT. It reports per pair the bandwidth ratio gdswap/fio
# and the CPU-seconds-per-GiB ratio gdswap/fio, their median, min and max, and PASS/FAIL
# against the goal (median bandwidth ratio >= 1.0, median CPU ratio <= 1.0).
#
# As root it reserves 2 MiB huge pages (fio's --iomem=shmhuge buffers and gdswap's buffer,
# which `--huge-pages auto` puts in hugetlb pages when enough are free) and restores
# /proc/sys/vm/nr_hugepages on exit, also after an error or Ctrl-C; it drops the page cache
# before each run. Without root it runs anyway, with THP/4 KiB buffers, and says so.
#
# Each tool runs with its defaults: gdswap's registers its buffers with io_uring (`--fixed-buffers
# auto`, since session 9), fio's does not (FIO_EXTRA="--fixedbufs --registerfiles" makes it).
#
# Usage: bench/fio-vs-host.sh [options]        (see --help; every option has an env variable)
# Output: OUT/README.md, OUT/results.json, OUT/raw/ (raw fio and gdswap JSON, logs).
# Exit status: 0 when the comparison ran (whatever the verdict), 1 on any failure, 2 bad usage.

set -Eeuo pipefail

PROG=fio-vs-host
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
HELPER="$SCRIPT_DIR/fio_vs_host.py"
DATE_UTC=$(date -u +%F)

DATA_DIR=${DATA_DIR:-$PWD/gdswap-data/bench}
SIZE=${SIZE:-1G}
PAIRS=${PAIRS:-5}
OUT=${OUT:-$REPO_ROOT/bench-results/$DATE_UTC-fio-vs-host}
GDSWAP=${GDSWAP:-}
KEEP_DATA=${KEEP_DATA:-0}
FORCE=${FORCE:-0}
FIO_EXTRA=${FIO_EXTRA:-}
# gdswap's buffer for reads and writes: full (a 1 GiB buffer, as a tensor) or ring (queue depth
# x block size reused buffers: the same footprint as fio's). READ_BUFFER is the older name.
BUFFER=${BUFFER:-${READ_BUFFER:-full}}

usage() {
    cat <<EOF
Usage: bench/fio-vs-host.sh [options]

Compares gdswap's host backend with fio's io_uring engine: sequential read and write,
block size 1M, queue depth 8, 1 thread, alternating pairs, median ratios.
Run as root to reserve huge pages and drop caches (nr_hugepages is restored on exit).

Options (environment variable in brackets):
  --data-dir DIR   directory of the data file [DATA_DIR] (default: ./gdswap-data/bench)
  --size SIZE      data file size, a multiple of 1M [SIZE] (default: 1G)
  --pairs N        pairs per direction [PAIRS] (default: 5)
  --out DIR        output directory [OUT] (default: bench-results/<YYYY-MM-DD>-fio-vs-host
                   in the repository, date in UTC)
  --gdswap PATH    gdswap binary [GDSWAP] (default: target/release/gdswap, built if absent)
  --keep-data      keep the data file afterwards [KEEP_DATA=1] (default: removed)
  --force          overwrite results already in the output directory [FORCE=1]
  -h, --help       this help
Extra fio options for experiments: FIO_EXTRA="--fixedbufs ..." (recorded in the output).
gdswap's buffer, for reads and writes: BUFFER=full (default: one buffer the size of the file,
as a tensor) or BUFFER=ring (queue depth x block size reused buffers, fio's footprint).
EOF
}

# ---------------------------------------------------------------------------- errors, cleanup

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

on_err() {
    local rc=$1 line=$2 cmd=$3
    echo "$PROG: error: '$cmd' failed with exit status $rc (line $line)" >&2
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

HUGE_CHANGED=0
HUGE_ORIG=
CHILD=
DATA_FILE=
DATA_FILE_CREATED=0
DATA_DIR_TOP=

cleanup() {
    local rc=$?
    trap - ERR INT TERM
    set +e
    if [[ -n $CHILD ]] && kill -0 "$CHILD" 2>/dev/null; then
        echo "$PROG: stopping running benchmark process $CHILD" >&2
        kill -TERM "$CHILD" 2>/dev/null
        wait "$CHILD" 2>/dev/null
    fi
    if [[ $HUGE_CHANGED == 1 ]]; then
        if echo "$HUGE_ORIG" >/proc/sys/vm/nr_hugepages 2>/dev/null; then
            echo "$PROG: /proc/sys/vm/nr_hugepages restored to $HUGE_ORIG (now $(cat /proc/sys/vm/nr_hugepages))" >&2
        else
            echo "$PROG: warning: could not restore /proc/sys/vm/nr_hugepages to $HUGE_ORIG; do it by hand" >&2
            [[ $rc == 0 ]] && rc=1
        fi
    fi
    if [[ $DATA_FILE_CREATED == 1 && $KEEP_DATA != 1 && -n $DATA_FILE ]]; then
        rm -f -- "$DATA_FILE"
        # Remove the directories this script created, innermost first, if they are empty.
        if [[ -n $DATA_DIR_TOP ]]; then
            d=$DATA_DIR
            while rmdir -- "$d" 2>/dev/null && [[ $d != "$DATA_DIR_TOP" ]]; do d=$(dirname -- "$d"); done
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "$PROG: interrupted" >&2; exit 130' INT
trap 'echo "$PROG: terminated" >&2; exit 143' TERM

# ---------------------------------------------------------------------------- options

while [[ $# -gt 0 ]]; do
    case $1 in
        --data-dir) DATA_DIR=${2:?--data-dir needs a value}; shift 2 ;;
        --data-dir=*) DATA_DIR=${1#*=}; shift ;;
        --size) SIZE=${2:?--size needs a value}; shift 2 ;;
        --size=*) SIZE=${1#*=}; shift ;;
        --pairs) PAIRS=${2:?--pairs needs a value}; shift 2 ;;
        --pairs=*) PAIRS=${1#*=}; shift ;;
        --out) OUT=${2:?--out needs a value}; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --gdswap) GDSWAP=${2:?--gdswap needs a value}; shift 2 ;;
        --gdswap=*) GDSWAP=${1#*=}; shift ;;
        --keep-data) KEEP_DATA=1; shift ;;
        --force) FORCE=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "$PROG: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

command -v python3 >/dev/null || die "python3 not found (needed by $HELPER)"
command -v fio >/dev/null || die "fio not found; install it with: apt-get install fio"

SIZE_BYTES=$(python3 "$HELPER" bytes "$SIZE") || { echo "$PROG: error: bad --size '$SIZE'" >&2; exit 2; }
MIB=$((1 << 20))
if ((SIZE_BYTES <= 0 || SIZE_BYTES % MIB != 0)); then
    echo "$PROG: error: --size must be a positive multiple of 1M (got $SIZE = $SIZE_BYTES bytes)" >&2
    exit 2
fi
if ! [[ $PAIRS =~ ^[1-9][0-9]*$ ]]; then
    echo "$PROG: error: --pairs must be a positive whole number (got '$PAIRS')" >&2
    exit 2
fi
read -r -a FIO_EXTRA_ARGS <<<"$FIO_EXTRA"

# Absolute paths: the commands recorded in the output must work from anywhere.
abspath() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
DATA_DIR=$(abspath "$DATA_DIR")
OUT=$(abspath "$OUT")
DATA_FILE=$DATA_DIR/fio-vs-host.dat

if [[ -z $GDSWAP ]]; then
    GDSWAP=$REPO_ROOT/target/release/gdswap
    if [[ ! -x $GDSWAP ]]; then
        command -v cargo >/dev/null || die "$GDSWAP is missing and cargo is not installed to build it"
        echo "$PROG: building gdswap (cargo build --release) ..."
        (cd "$REPO_ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    fi
fi
GDSWAP=$(abspath "$GDSWAP")
[[ -x $GDSWAP ]] || die "gdswap binary '$GDSWAP' is missing or not executable"
GDSWAP_VERSION=$("$GDSWAP" --version) || die "'$GDSWAP --version' failed"
FIO_VERSION=$(fio --version) || die "'fio --version' failed"

if [[ -e $OUT/results.json || -e $OUT/README.md || -e $OUT/raw ]]; then
    [[ $FORCE == 1 ]] || die "$OUT already holds results; pass --force (FORCE=1) to overwrite, or --out elsewhere"
    rm -rf -- "$OUT/raw" "$OUT/results.json" "$OUT/README.md"
fi
mkdir -p -- "$OUT/raw" || die "cannot create $OUT/raw"
RAW=$OUT/raw
if [[ ! -d $DATA_DIR ]]; then
    DATA_DIR_TOP=$DATA_DIR
    while [[ ! -e $(dirname -- "$DATA_DIR_TOP") ]]; do DATA_DIR_TOP=$(dirname -- "$DATA_DIR_TOP"); done
    mkdir -p -- "$DATA_DIR" || die "cannot create $DATA_DIR"
fi

ROOT=0
[[ $(id -u) == 0 ]] && ROOT=1

# ---------------------------------------------------------------------------- page cache

DROP_CACHES="no (not root)"
if [[ $ROOT == 1 ]]; then
    if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        DROP_CACHES="yes (sync; echo 3 > /proc/sys/vm/drop_caches)"
    else
        DROP_CACHES="no (/proc/sys/vm/drop_caches is not writable here)"
    fi
fi
drop_caches() {
    if [[ $DROP_CACHES == yes* ]]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches || die "cannot write /proc/sys/vm/drop_caches"
    fi
}

# ---------------------------------------------------------------------------- huge pages

meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
huge_avail() { echo $(($(meminfo HugePages_Free) - $(meminfo HugePages_Rsvd))); }

HUGE_KB=$(meminfo Hugepagesize)
HUGE_KB=${HUGE_KB:-0}
HUGE_ORIG=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
HUGE_SET=$HUGE_ORIG
HUGE_BYTES=$((2 * MIB))
# gdswap: one buffer as large as the file (1 thread). fio: bs*iodepth = 8 MiB per job, which
# fio rounds up and aligns (6 pages measured with fio 3.33); twice, for the warm-up job and the
# measured job, plus slack.
GD_PAGES=$(((SIZE_BYTES + HUGE_BYTES - 1) / HUGE_BYTES))
FIO_PAGES=$(((8 * MIB + HUGE_BYTES - 1) / HUGE_BYTES + 2))
HUGE_NEED=$((GD_PAGES + 2 * FIO_PAGES + 4))
HUGE_FREE=0
HUGE_STATE="not used"
HUGE_NOTE=""
if [[ $HUGE_KB != 2048 ]]; then
    HUGE_NOTE="the default huge page size is ${HUGE_KB} kB, not 2 MiB; fio uses default buffers, gdswap THP/4 KiB"
else
    HUGE_FREE=$(huge_avail)
    if ((HUGE_FREE >= HUGE_NEED)); then
        HUGE_STATE="reserved"
        HUGE_NOTE="$HUGE_FREE free 2 MiB pages were already reserved (needed $HUGE_NEED); nr_hugepages left at $HUGE_ORIG"
    elif [[ $ROOT == 1 ]]; then
        target=$((HUGE_ORIG + HUGE_NEED - HUGE_FREE))
        echo "$PROG: reserving huge pages: nr_hugepages $HUGE_ORIG -> $target (restored on exit)"
        HUGE_CHANGED=1
        if ! echo "$target" >/proc/sys/vm/nr_hugepages 2>/dev/null; then
            HUGE_CHANGED=0
            HUGE_NOTE="could not write /proc/sys/vm/nr_hugepages; "
        fi
        HUGE_SET=$(cat /proc/sys/vm/nr_hugepages)
        HUGE_FREE=$(huge_avail)
        if ((HUGE_FREE >= HUGE_NEED)); then
            HUGE_STATE="reserved"
            HUGE_NOTE="nr_hugepages raised from $HUGE_ORIG to $HUGE_SET for the run and restored afterwards; $HUGE_FREE pages of 2 MiB free (needed $HUGE_NEED)"
        else
            HUGE_STATE="partly reserved"
            HUGE_NOTE+="asked for $target pages, the kernel gave nr_hugepages=$HUGE_SET with $HUGE_FREE free (needed $HUGE_NEED: $GD_PAGES for gdswap, $((2 * FIO_PAGES)) for fio)"
        fi
    else
        HUGE_STATE="not reserved"
        HUGE_NOTE="not root, so no huge pages could be reserved ($HUGE_FREE free, needed $HUGE_NEED): fio uses its default buffers, gdswap THP or 4 KiB pages"
    fi
fi
FIO_MEM=()
if [[ $HUGE_KB == 2048 ]] && ((HUGE_FREE >= 2 * FIO_PAGES)); then
    FIO_MEM=(--iomem=shmhuge --hugepage-size=2M)
fi
echo "$PROG: huge pages: $HUGE_STATE; $HUGE_NOTE"
echo "$PROG: page cache dropped before each run: $DROP_CACHES"

# ---------------------------------------------------------------------------- runs

SEQ=0
: >"$RAW/runs.tsv"
quote() { printf '%q ' "$@" | sed 's/ $//'; }

# run NAME CMD...: runs CMD with its output in raw/NAME.log; dies with one line on failure.
run() {
    local name=$1 rc=0
    shift
    "$@" >"$RAW/$name.log" 2>&1 &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    if ((rc != 0)); then
        local why
        why=$(grep -m1 -iE 'error|fail' "$RAW/$name.log" || tail -n1 "$RAW/$name.log" || true)
        die "$name failed (exit $rc): ${why:-no output}; full output in $RAW/$name.log"
    fi
}

# fio_cmd OP JSON: the fio command, shared with bench/fio-vs-fio.sh.
# shellcheck source=bench/fio-peer.sh
source "$SCRIPT_DIR/fio-peer.sh"

gdswap_cmd() { # OP JSON
    GD_CMD=("$GDSWAP" run --backend host --op "$1" --file "$DATA_FILE" --size "$SIZE_BYTES"
        --block-size 1M --queue-depth 8 --threads 1 --loops 3 --warmup 1 --huge-pages auto
        --json "$2")
    if [ "$BUFFER" != full ]; then
        GD_CMD+=(--buffer "$BUFFER")
    fi
}

measure() { # PAIR OP TOOL
    local pair=$1 op=$2 tool=$3 name json
    name=pair$pair-$op-$tool
    json=$RAW/$name.json
    if [[ $tool == fio ]]; then
        fio_cmd "$op" "$json"
        set -- "${FIO_CMD[@]}"
    else
        gdswap_cmd "$op" "$json"
        set -- "${GD_CMD[@]}"
    fi
    SEQ=$((SEQ + 1))
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$pair" "$op" "$tool" "$SEQ" "$name.json" "$(quote "$@")" >>"$RAW/runs.tsv"
    drop_caches
    run "$name" "$@"
    printf '%s: pair %d/%d %-5s %-6s %s\n' "$PROG" "$pair" "$PAIRS" "$op" "$tool" \
        "$(python3 "$HELPER" show "$tool" "$json" "$op")"
}

STARTED=$(date -u +%FT%TZ)
SETUP_CMD=("$GDSWAP" run --op write --file "$DATA_FILE" --size "$SIZE_BYTES" --loops 1 --warmup 0
    --verify --json "$RAW/setup-create.json")
echo "$PROG: creating the $SIZE data file $DATA_FILE"
DATA_FILE_CREATED=1
run setup-create "${SETUP_CMD[@]}"

for ((p = 1; p <= PAIRS; p++)); do
    if ((p % 2 == 1)); then order=(fio gdswap); else order=(gdswap fio); fi
    for op in read write; do
        for tool in "${order[@]}"; do
            measure "$p" "$op" "$tool"
        done
    done
done
FINISHED=$(date -u +%FT%TZ)

# ---------------------------------------------------------------------------- report

export FVH_OUT=$OUT FVH_DATA_FILE=$DATA_FILE FVH_SIZE_BYTES=$SIZE_BYTES FVH_PAIRS=$PAIRS \
    FVH_DATE=$DATE_UTC FVH_STARTED=$STARTED FVH_FINISHED=$FINISHED FVH_ROOT=$ROOT \
    FVH_DROP_CACHES=$DROP_CACHES FVH_HUGE_STATE=$HUGE_STATE FVH_HUGE_NOTE=$HUGE_NOTE \
    FVH_HUGE_ORIG=$HUGE_ORIG FVH_HUGE_SET=$HUGE_SET FVH_HUGE_FREE=$HUGE_FREE \
    FVH_HUGE_NEED=$HUGE_NEED FVH_HUGE_KB=$HUGE_KB FVH_FIO_VERSION=$FIO_VERSION \
    FVH_GDSWAP=$GDSWAP FVH_GDSWAP_VERSION=$GDSWAP_VERSION FVH_FIO_EXTRA=$FIO_EXTRA \
    FVH_SETUP_CMD="$(quote "${SETUP_CMD[@]}")"
python3 "$HELPER" report || die "building the report from $RAW failed"
echo "$PROG: wrote $OUT/README.md, $OUT/results.json and $RAW/"
