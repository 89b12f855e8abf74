#!/bin/bash
for p in 1 2 3; do
 for mib in 64 1024 1024 64; do
  rm -rf /work/benchdata/st; mkdir -p /work/benchdata/st
  GDSWAP_BATCH_MIB=$mib /tmp/store_bench_exp /work/benchdata/st/store 8 128 2 2 staged verify > /tmp/be-$p-$mib.out 2>&1
  echo "$p $mib $(grep swap_out /tmp/be-$p-$mib.out | tail -2 | python3 -c 'import sys,json; print(" ".join("%.3f"%json.loads(l)["seconds"] for l in sys.stdin))')"
 done
done
