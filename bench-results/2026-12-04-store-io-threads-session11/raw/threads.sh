#!/usr/bin/env bash
# Swap store I/O threads A/B (session 11): store_bench with 1, 2 and 4 I/O threads.
# BIN: store_bench of the commit under test. Usage: BIN=... DATA_DIR=... PAIRS=6 bash threads.sh OUT
set -euo pipefail
OUT=$1; BIN=${BIN:?}; DATA_DIR=${DATA_DIR:?}; PAIRS=${PAIRS:-6}
mkdir -p "$OUT/raw"
variants=(threads2 threads1 threads4)
for pair in $(seq "$PAIRS"); do
  n=${#variants[@]}
  for k in $(seq 0 $((n-1))); do
    v=${variants[$(( (k + pair - 1) % n ))]}
    rm -rf "$DATA_DIR/sb"
    "$BIN" "$DATA_DIR/sb" 8 128 4 "${v#threads}" staged verify > "$OUT/raw/pair$pair-$v.jsonl"
  done
done
