#!/usr/bin/env bash
# The oracle-core benchmark on the GPU machine (which has no shared data): builds the CLI and
# bench_oracle, then runs the ablation, the FaDeX analysis and the speed test on the held-out set
# exported here by `bench_oracle --export-set .cache/oracle_set`, with the weights in weights/.
# Carry: .deps, .cache/gpu_weights (general-x4v3 + LPIPS), .cache/oracle_set. Results under $OUT.
# Env: MODELS (default weights), PARAM_MODELS (folder with restorer_params + param_encoder from
# `train restorer --param-oracle`: adds the true-parameter upper bound), ABLATION_ONLY=1,
# W (weights folder: Real-ESRGAN base + LPIPS, default .cache/gpu_weights; x4plus restorers need
# realesrgan-x4plus.safetensors there, e.g. W=.cache/gpu_x4), BENCH_ARGS (more ablation arguments; the
# GAN restorer of issue 21: BENCH_ARGS="--realism 1 --metric-weights .cache/train_gan/w
# --x4plus-weights .cache/x4plus_fp16.safetensors" with scene_restorer*_gan.safetensors in $MODELS).
set -euo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
TARGETS="face2scene bench_oracle" bash scripts/gpu-build.sh build-gpu | tail -3
W=${W:-.cache/gpu_weights}
export F2S_WEIGHTS_DIR=$W
B=build-gpu/bin/bench_oracle
R=out/oracle_bench
mkdir -p "$R" "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
echo "== ablation (cuda, fp32) =="
M=${MODELS:-weights}
$B --ablation --device cuda --set .cache/oracle_set --models "$M" --lpips-weights "$W" --out "$R" \
  ${PARAM_MODELS:+--param-models "$PARAM_MODELS"} ${BENCH_ARGS:-} 2>&1 | grep -v "^ablation:" | tail -70
if [ "${ABLATION_ONLY:-0}" = 1 ]; then tar -C "$R" -czf "$OUT/oracle_bench.tgz" .; exit 0; fi
echo "== FaDeX analysis =="
$B --fadex --device cuda --set .cache/oracle_set --models "$M" --out "$R" 2>&1 | tail -20
echo "== speed =="
for dt in bf16 fp16 fp32; do $B --speed --device cuda --dtype "$dt" --models "$M" 2>&1 | tail -2; done
echo "== upscale stage timings (general-x4v3, 6 crops 256² -> 1024², cuda fp16) =="
mkdir -p /tmp/up_in && cp .cache/oracle_set/scenes/00[0-5]_* /tmp/up_in/
/usr/bin/time -f "%e s wall" build-gpu/bin/face2scene -v upscale /tmp/up_in -o /tmp/up_out --model general-x4v3 --device cuda \
  --weights "$W/realesr-general-x4v3.safetensors" 2>&1 | grep -E "stages|wall"
tar -C "$R" -czf "$OUT/oracle_bench.tgz" .
ls -la "$OUT"
