#!/usr/bin/env bash
# Swap-in check priority A/B (session 11): the checker's CRC threads at normal priority,
# nice 19 or SCHED_IDLE, against no check. BIN: store_bench from c7f7390 + hack2.diff.
# Usage: BIN=... DATA_DIR=... PAIRS=6 bash check-prio.sh OUT
set -euo pipefail
OUT=$1; BIN=${BIN:?}; DATA_DIR=${DATA_DIR:?}; PAIRS=${PAIRS:-6}
mkdir -p "$OUT/raw"
variants=(shipped noverify nice19 idle)
for pair in $(seq "$PAIRS"); do
  n=${#variants[@]}
  for k in $(seq 0 $((n-1))); do
    v=${variants[$(( (k + pair - 1) % n ))]}
    env=(); check=verify
    case $v in
      noverify) check=noverify ;;
      nice19) env=(HACK_CHECK_PRIO=19) ;;
      idle) env=(HACK_CHECK_PRIO=idle) ;;
    esac
    rm -rf "$DATA_DIR/sb"
    env "${env[@]}" "$BIN" "$DATA_DIR/sb" 8 128 4 2 staged "$check" > "$OUT/raw/pair$pair-$v.jsonl"
  done
done
