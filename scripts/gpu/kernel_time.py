"""Sum the GPU time of a Kineto trace (`face2scene restore --profile-trace`), by pipeline stage.

Every kernel, copy and memset is tied to the CUDA runtime call that launched it (the trace's
correlation id), and that call to the stage ("f2s::scene", ...) whose user scope encloses it on the
same thread. Prints the kernel time per photo by stage, the busy time of the GPU (the union of all
its intervals, so overlapping streams are not counted twice) and the top kernels.
Usage: python3 kernel_time.py TRACE.json PHOTOS [WALL_S_PER_PHOTO]"""
import collections
import json
import sys

trace, n = sys.argv[1], int(sys.argv[2])
wall = float(sys.argv[3]) if len(sys.argv) > 3 else None
ev = json.load(open(trace))["traceEvents"]
gpu = [e for e in ev if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in e]
launch = {}
for e in ev:
    if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {}):
        launch[e["args"]["correlation"]] = e
scopes = collections.defaultdict(list)
for e in ev:
    if e.get("cat") == "user_annotation" and str(e.get("name", "")).startswith("f2s::"):
        scopes[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"], e["name"][5:]))


def stage_of(k):
    r = launch.get(k.get("args", {}).get("correlation"))
    if r is None:
        return "(no launch found)"
    for a, b, name in scopes.get((r["pid"], r["tid"]), []):
        if a <= r["ts"] <= b:
            return name
    return "(outside the stages)"


by_stage = collections.Counter()
by_name = collections.Counter()
for k in gpu:
    by_stage[stage_of(k)] += k["dur"]
    by_name[k["name"][:90]] += k["dur"]
iv = sorted((k["ts"], k["ts"] + k["dur"]) for k in gpu)
busy, end = 0.0, None
for a, b in iv:
    if end is None or a > end:
        busy += b - a
        end = b
    elif b > end:
        busy += b - end
        end = b
total = sum(k["dur"] for k in gpu)
print(f"profiled run: {n} photos, {len(gpu)} GPU kernels/copies")
print(f"GPU kernel+copy time per photo: {total / n / 1000:.2f} ms (sum); busy {busy / n / 1000:.2f} ms (union)")
if wall:
    print(f"wall time per photo in the unprofiled run: {wall * 1000:.1f} ms = {wall * 1000 / (busy / n / 1000):.2f}x the GPU busy time")
for s, d in by_stage.most_common():
    print(f"  stage {s:22s} {d / n / 1000:9.2f} ms per photo")
print("top kernels (ms per photo):")
for name, d in by_name.most_common(12):
    print(f"  {d / n / 1000:8.2f}  {name}")
