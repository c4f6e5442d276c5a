#!/usr/bin/env bash
# The Ref-FR benchmark (bench_ref_fr, issue #18) on the GPU machine, which has no shared data:
# builds bench_ref_fr and runs every held-out face of every set on CUDA (fp32), from the folder made
# here by `build/bin/bench_ref_fr --pack .cache/ref_fr_bench --limit 0` (inputs as 128² PNGs, the
# manifest, LPIPS/NIQE, Real-ESRGAN x4plus and the fp16 face descriptor: ~55 MB).
# Carry: .deps, .cache/ref_fr_bench. Results (CSV, report, grid) under $OUT.
# Env: LIMIT (faces per set, default 0 = all), SETS (default all four), MODELS (default weights).
set -euo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
TARGETS="bench_ref_fr" bash scripts/gpu-build.sh build-gpu | tail -3
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
mkdir -p "$OUT/results"
build-gpu/bin/bench_ref_fr --models "${MODELS:-weights}" --data .cache/ref_fr_bench --device cuda --limit "${LIMIT:-0}" \
  --sets "${SETS:-london,celeba,celebref_pairs,synlq}" -o "$OUT/results" --grid "$OUT/images/ref_fr_grid.png" 2>&1 | tail -5
ls -la "$OUT/results" "$OUT/images"
