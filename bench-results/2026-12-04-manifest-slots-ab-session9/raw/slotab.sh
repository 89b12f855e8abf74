#!/bin/bash
# A/B: store_bench old (rename commits) vs new (slots), staged verify, 8x128MiB, 2 rounds after 2 warm-up
for p in 1 2 3 4 5 6; do
 if ((p % 2)); then order="old new"; else order="new old"; fi
 for v in $order; do
  rm -rf /work/benchdata/st; mkdir -p /work/benchdata/st
  /tmp/store_bench_$v /work/benchdata/st/store 8 128 2 2 staged noverify > /tmp/ab-$p-$v.out 2>&1
  echo "$p $v $(grep swap_out /tmp/ab-$p-$v.out | tail -2 | python3 -c 'import sys,json; print(" ".join("%.3f"%json.loads(l)["seconds"] for l in sys.stdin))')"
 done
done
