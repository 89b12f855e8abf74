#!/bin/bash
for i in 1 2 3; do
  for v in old new; do
    if [ $v = old ]; then B=/work/main/target/old/release/examples/store_bench; else B=/work/main/target/release/examples/store_bench; fi
    rm -rf /tmp/sb/gc
    echo "$v $($B /tmp/sb/gc 64 4 3 2 | python3 -c 'import sys,json; print(" ".join("%s %.3f" % (json.loads(l)["phase"], json.loads(l)["seconds"]) for l in sys.stdin))')"
  done
done
