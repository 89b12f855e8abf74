#!/usr/bin/env bash
# Swap-store ablation (session 11): which part of a swap-out / swap-in costs what.
# BIN: store_bench built from commit c7f7390 with hack.diff applied (env knobs, never shipped).
# Usage: BIN=... DATA_DIR=... PAIRS=6 bash store-ablation.sh OUT
set -euo pipefail
OUT=$1; BIN=${BIN:?}; DATA_DIR=${DATA_DIR:?}; PAIRS=${PAIRS:-6}
mkdir -p "$OUT/raw"
variants=(shipped shipped-noverify no-out-crc no-commit crc-before-write)
for pair in $(seq "$PAIRS"); do
  n=${#variants[@]}
  for k in $(seq 0 $((n-1))); do
    v=${variants[$(( (k + pair - 1) % n ))]}
    env=(); check=verify
    case $v in
      shipped) ;;
      shipped-noverify) check=noverify ;;
      no-out-crc) env=(HACK_NO_OUT_CRC=1); check=noverify ;;
      no-commit) env=(HACK_NO_COMMIT=1) ;;
      crc-before-write) env=(HACK_PRE_CRC=1) ;;
    esac
    rm -rf "$DATA_DIR/sb"
    env "${env[@]}" "$BIN" "$DATA_DIR/sb" 8 128 4 2 staged "$check" > "$OUT/raw/pair$pair-$v.jsonl"
  done
done
