#!/usr/bin/env bash
# ring-ab.sh: two gdswap host-engine variants against each other, many short alternating
# pairs (finer than ring-ablation.sh's rows on a noisy machine, where fio itself drifts):
# each run reads (or writes) the file once (1 GiB, 1 MiB blocks, qd 8, --buffer ring,
# hugetlb), order alternating; prints and records the median of
# the per-pair ratios B/A.
#
# Usage: sudo bench/ring-ab.sh OUT_FILE PAIRS OP "ARGS A" "ARGS B"   (env: GDSWAP, DATA_FILE)
set -Eeuo pipefail
OUT=${1:?OUT_FILE}; PAIRS=${2:?PAIRS}; OP=${3:?OP}; A=${4-}; B=${5-}
GDSWAP=${GDSWAP:-$(dirname "$0")/../target/release/gdswap}
DATA_FILE=${DATA_FILE:?set DATA_FILE to an existing 1 GiB file written by gdswap}
[[ $(id -u) == 0 ]] || { echo "ring-ab: needs root (drop_caches)" >&2; exit 1; }
one() { # ARGS -> GiB/s
    local -a x; read -r -a x <<<"$1"
    # O_DIRECT needs no dropped cache; DROP=1 drops it anyway (it makes builds running beside
    # the benchmark re-read their files, which loads the disk the benchmark measures).
    if [[ ${DROP:-0} == 1 ]]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
    "$GDSWAP" run --backend host --op "$OP" --file "$DATA_FILE" --size 1G --block-size 1M \
        --queue-depth 8 --loops 1 --warmup 0 --buffer ring --huge-pages hugetlb "${x[@]}" \
        --json - 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["bandwidth_gibps"])'
}
: >"$OUT"
echo "# A: $A | B: $B | op $OP | $("$GDSWAP" --version)" >>"$OUT"
for ((p = 1; p <= PAIRS; p++)); do
    if ((p % 2)); then a=$(one "$A"); b=$(one "$B"); else b=$(one "$B"); a=$(one "$A"); fi
    echo "$p $a $b" >>"$OUT"
done
python3 - "$OUT" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if not l.startswith("#")]
r = [float(b) / float(a) for _, a, b in rows]
a = statistics.median(float(x[1]) for x in rows); b = statistics.median(float(x[2]) for x in rows)
line = f"median A {a:.2f} GiB/s, B {b:.2f} GiB/s, median B/A {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}, {len(r)} pairs)"
print(line); open(sys.argv[1], "a").write("# " + line + "\n")
PY
