import json,statistics as st,collections,sys
vs=sys.argv[1].split(","); pairs=int(sys.argv[2])
data=collections.defaultdict(dict); res={}
for p in range(1,pairs+1):
  for v in vs:
    rows=[json.loads(l) for l in open(f"raw/pair{p}-{v}.jsonl")]
    for ph in ("swap_out","swap_in"):
      data[(p,v)][ph]=st.median([r["bytes"]/r["seconds"]/1e9 for r in rows if r["phase"]==ph])
print(f"| variant | swap-out GB/s (median of pairs) | swap-out / {vs[0]} | swap-in GB/s | swap-in / {vs[0]} |")
print("|---|---:|---:|---:|---:|")
for v in vs:
  row=[f"`{v}`"]; res[v]={}
  for ph in ("swap_out","swap_in"):
    rates=[data[(p,v)][ph] for p in range(1,pairs+1)]
    ratios=[data[(p,v)][ph]/data[(p,vs[0])][ph] for p in range(1,pairs+1)]
    res[v][ph]={"rates_gbps":rates,"ratios":ratios,"median_rate":st.median(rates),"median_ratio":st.median(ratios)}
    row+=[f"{st.median(rates):.2f}", "1 (reference)" if v==vs[0] else f"{st.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"]
  print("| "+" | ".join(row)+" |")
json.dump(res,open("results.json","w"),indent=1)
