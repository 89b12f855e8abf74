#!/usr/bin/env bash
# ring-ablation.sh: where gdswap's host (io_uring) engine loses time against fio, one knob at
# a time, each row measured side by side with fio in the same run.
#
# Every row is one gdswap variant (--ring-setup, --ring-submit, --ring-wait, --register-files,
# --fixed-buffers, --ring-opcode, CPU pinning, page type). For each row, PAIRS pairs alternate
# which tool goes first (fio then gdswap, gdswap then fio), each run 1 warm-up + 3 measured
# loops over a 1 GiB file, 1 MiB blocks, queue depth 8, O_DIRECT (DROP=1: caches dropped
# before each run), both tools with the same footprint (queue depth x block size reused buffers: gdswap's
# --buffer ring, fio's own) in 2 MiB hugetlb pages. The row's figure is the median of its
# per-pair ratios gdswap/fio (bandwidth, CPU-s/GiB, p50 latency). Since session 9 gdswap's
# default registers its buffers (`--fixed-buffers auto`), so every knob row runs registered
# against fio's default (unregistered) except `unregistered` and `register-files`. Then one read of each tool
# (the default variant) under `strace -c -f` and, where it works, `perf stat`.
#
# Usage: sudo bench/ring-ablation.sh OUT_DIR [--pairs N] [--ops read,write] [--rows a,b,...]
#   (env: PAIRS, OPS, ROWS, SIZE, DATA_DIR, GDSWAP)
# Output: OUT_DIR/README.md (Markdown table), OUT_DIR/results.json, OUT_DIR/raw/ (every run's
# JSON, runs.tsv, strace and perf output).
# Needs root (huge pages, drop_caches); reserves 2 MiB pages and restores nr_hugepages on exit.

set -Eeuo pipefail

PROG=ring-ablation
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# fio_cmd: the fio command of fio-vs-host.sh.
# shellcheck source=bench/fio-peer.sh
source "$SCRIPT_DIR/fio-peer.sh"

die() { echo "$PROG: error: $*" >&2; exit 1; }

OUT=
PAIRS=${PAIRS:-5}
OPS=${OPS:-read}
ROWS=${ROWS:-}
SIZE=${SIZE:-1G}
DATA_DIR=${DATA_DIR:-$PWD/gdswap-data/bench}
GDSWAP=${GDSWAP:-$REPO_ROOT/target/release/gdswap}

while [[ $# -gt 0 ]]; do
    case $1 in
        --pairs) PAIRS=${2:?--pairs needs a value}; shift 2 ;;
        --ops) OPS=${2:?--ops needs a value}; shift 2 ;;
        --rows) ROWS=${2:?--rows needs a value}; shift 2 ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        -*) echo "$PROG: error: unknown option '$1'" >&2; exit 2 ;;
        *) [[ -z $OUT ]] || { echo "$PROG: error: one output directory only" >&2; exit 2; }
           OUT=$1; shift ;;
    esac
done
[[ -n $OUT ]] || { echo "$PROG: error: give the output directory (see --help)" >&2; exit 2; }
[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || { echo "$PROG: error: --pairs must be a positive number" >&2; exit 2; }
[[ $(id -u) == 0 ]] || die "needs root (huge pages, drop_caches)"
command -v fio >/dev/null || die "fio not found"
[[ -x $GDSWAP ]] || die "$GDSWAP missing: cargo build --release"
[[ -e $OUT/results.json ]] && die "$OUT already holds results"
RAW=$OUT/raw
mkdir -p "$RAW" "$DATA_DIR"
DATA_FILE=$DATA_DIR/ring-ablation.dat

# Rows: NAME|gdswap extra args|fio extra args|command prefix for both (pinning)
ALL_ROWS=(
    "default||"
    "setup-none|--ring-setup none|"
    "setup-coop|--ring-setup coop|"
    "setup-defer|--ring-setup defer|"
    "setup-sqpoll|--ring-setup sqpoll|"
    "submit-each|--ring-submit each|"
    "submit-batch|--ring-submit batch|"
    "wait-2|--ring-wait 2|"
    "wait-all|--ring-wait all|"
    "submit-each-wait-all|--ring-submit each --ring-wait all|"
    "unregistered|--fixed-buffers off|"
    "register-files|--fixed-buffers off --register-files|"
    "fixed-buffers|--fixed-buffers on|"
    "fixed-buffers-both|--fixed-buffers|--fixedbufs --registerfiles"
    "opcode-readv|--ring-opcode readv|"
    "submit-each-fixed|--ring-submit each --fixed-buffers|"
    "pinned-cpu1|||taskset -c 1"
    "pages-4k|--huge-pages off|--iomem=malloc"
)

HUGE_ORIG=$(cat /proc/sys/vm/nr_hugepages)
restore() {
    echo "$HUGE_ORIG" >/proc/sys/vm/nr_hugepages || echo "$PROG: warning: restore nr_hugepages to $HUGE_ORIG by hand" >&2
    rm -f -- "$DATA_FILE"
}
trap restore EXIT
free_huge=$(awk '$1=="HugePages_Free:"{print $2}' /proc/meminfo)
if ((free_huge < 64)); then
    echo $((HUGE_ORIG + 64 - free_huge)) >/proc/sys/vm/nr_hugepages
fi
free_huge=$(awk '$1=="HugePages_Free:"{print $2}' /proc/meminfo)
((free_huge >= 32)) || die "could not reserve 32 huge pages of 2 MiB (free: $free_huge)"

# Both tools use O_DIRECT, so the page cache holds none of the file; DROP=1 drops it anyway
# before each run (on a shared machine that makes everything else re-read its files from the
# disk being measured, so it is off by default).
export DROP=${DROP:-0}
drop() { if [[ $DROP == 1 ]]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi; }

echo "$PROG: writing the $SIZE data file"
"$GDSWAP" run --op write --file "$DATA_FILE" --size "$SIZE" --loops 1 --warmup 0 >"$RAW/setup.log" 2>&1

: >"$RAW/runs.tsv"
measure() { # ROW PAIR OP TOOL GDARGS FIOARGS PREFIX
    local row=$1 pair=$2 op=$3 tool=$4 gd=$5 fi=$6 pre=$7 json
    json=$RAW/$row-$op-p$pair-$tool.json
    local -a cmd pfx gdx fix
    read -r -a pfx <<<"$pre"
    read -r -a gdx <<<"$gd"
    read -r -a fix <<<"$fi"
    if [[ $tool == fio ]]; then
        local mem=(--iomem=shmhuge --hugepage-size=2M)
        [[ " $fi " == *" --iomem="* ]] && mem=()
        # fio-vs-host.sh's fio command (bench/fio-peer.sh), with this row's options.
        FIO_MEM=("${mem[@]}") FIO_EXTRA_ARGS=("${fix[@]}") SIZE_BYTES=$SIZE
        fio_cmd "$op" "$json"
        cmd=("${FIO_CMD[@]}")
    else
        local pages=(--huge-pages hugetlb)
        [[ " $gd " == *" --huge-pages "* ]] && pages=()
        cmd=("$GDSWAP" run --backend host --op "$op" --file "$DATA_FILE" --size "$SIZE"
            --block-size 1M --queue-depth 8 --threads 1 --loops 3 --warmup 1 --buffer ring
            "${pages[@]}" "${gdx[@]}" --json "$json")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$row" "$pair" "$op" "$tool" "$(basename "$json")" \
        "${pfx[*]} ${cmd[*]}" >>"$RAW/runs.tsv"
    drop
    "${pfx[@]}" "${cmd[@]}" >"$RAW/$row-$op-p$pair-$tool.log" 2>&1 ||
        die "$row $op pair $pair $tool failed: $(tail -n1 "$RAW/$row-$op-p$pair-$tool.log")"
}

IFS=, read -r -a OP_LIST <<<"$OPS"
for spec in "${ALL_ROWS[@]}"; do
    IFS='|' read -r row gd fi pre <<<"$spec"
    if [[ -n $ROWS && ",$ROWS," != *",$row,"* ]]; then continue; fi
    printf '%s\t%s\t%s\t%s\n' "$row" "$gd" "$fi" "$pre" >>"$RAW/rows.tsv"
    for op in "${OP_LIST[@]}"; do
        for ((p = 1; p <= PAIRS; p++)); do
            if ((p % 2 == 1)); then order=(fio gdswap); else order=(gdswap fio); fi
            for tool in "${order[@]}"; do
                measure "$row" "$p" "$op" "$tool" "$gd" "$fi" "$pre"
            done
        done
        python3 "$SCRIPT_DIR/ring_ablation.py" row "$RAW" "$row" "$op"
    done
done

# System calls and counters of one default read of each tool.
echo "$PROG: strace -c -f and perf stat of one read each"
FIO_ONE=(fio --output-format=json --ioengine=io_uring --direct=1 --bs=1M --iodepth=8 --rw=read
    --numjobs=1 "--filename=$DATA_FILE" "--size=$SIZE" --iomem=shmhuge --hugepage-size=2M
    --name=one --loops=1)
GD_ONE=("$GDSWAP" run --backend host --op read --file "$DATA_FILE" --size "$SIZE" --block-size 1M
    --queue-depth 8 --threads 1 --loops 1 --warmup 0 --buffer ring --huge-pages hugetlb)
drop; strace -c -f -o "$RAW/strace-fio.txt" "${FIO_ONE[@]}" >/dev/null 2>&1 || true
drop; strace -c -f -o "$RAW/strace-gdswap.txt" "${GD_ONE[@]}" >/dev/null 2>&1 || true
if perf stat -e task-clock true >/dev/null 2>&1; then
    drop; perf stat -o "$RAW/perf-fio.txt" -e task-clock,context-switches,cpu-migrations,page-faults "${FIO_ONE[@]}" >/dev/null 2>&1 || true
    drop; perf stat -o "$RAW/perf-gdswap.txt" -e task-clock,context-switches,cpu-migrations,page-faults "${GD_ONE[@]}" >/dev/null 2>&1 || true
else
    echo "perf stat does not work here" >"$RAW/perf-unavailable.txt"
fi

python3 "$SCRIPT_DIR/ring_ablation.py" report "$OUT" "$PAIRS" "$OPS" "$("$GDSWAP" --version)" "$(fio --version)" "$(uname -r)"
echo "$PROG: wrote $OUT/README.md and $OUT/results.json"
