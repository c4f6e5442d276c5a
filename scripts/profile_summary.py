#!/usr/bin/env python3
"""Sums a LibTorch Chrome trace (bench_ref_fr_speed --profile) by op name: self time is not in
the legacy trace, so nested ops (aten::conv2d > mkldnn_convolution) are listed with their total
time; read the leaves. Usage: scripts/profile_summary.py trace.json [top]"""
import json, sys, collections
events = json.load(open(sys.argv[1]))
events = events["traceEvents"] if isinstance(events, dict) else events
tot = collections.Counter(); cnt = collections.Counter()
for e in events:
    if e.get("ph") == "X":
        tot[e["name"]] += e.get("dur", 0); cnt[e["name"]] += 1
for name, us in tot.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 25):
    print(f"{us/1000:10.1f} ms {cnt[name]:6d}x  {name}")
