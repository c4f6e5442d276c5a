#!/usr/bin/env bash
# One device call (issue #19, face scale): build, train the face-size FaDeX by distillation from
# weights/fadex.safetensors (resuming from .cache/fadex_sizes_ckpt when carried), then run
# bench_face_scale on the held-out CelebA-ID test scenes: blind vs fixed (v1) vs native (new).
# Carry: .deps .cache/fadex_sizes .cache/fadex_eval .cache/gpu_weights (scripts/gpu/pack_fadex_sizes.sh)
# Env: MIN (training minutes, default 5; 0 = only the benchmark, with .cache/fadex_sizes_ckpt's
# fadex.safetensors), ARGS (more train args), BENCH_ARGS (e.g. --limit 10), BENCH (0 = train only),
# INIT (a student to start from when no checkpoint is there, e.g. weights/fadex_sizes.safetensors),
# TASK (task-loss weight: restore through the frozen weights/scene_restorer.safetensors; 0 = off).
# The carry with the tree may not fit one call (64 MiB): then call 1 carries .deps .cache/fadex_sizes
# .cache/gpu_weights .cache/fadex_eval/weights with BENCH=0, and call 2 (warm) .cache/fadex_eval with MIN=0.
set -euo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
TARGETS="face2scene bench_face_scale" bash scripts/gpu-build.sh build-gpu | tail -3
export F2S_CACHE=$PWD/.cache/fadex_eval  # weights/realesr-general-x4v3.safetensors: the restorers' base
CK=out/fadex_sizes
mkdir -p "$CK" "$OUT"
if [ -d .cache/fadex_sizes_ckpt ]; then cp .cache/fadex_sizes_ckpt/* "$CK/"; fi
if [ ! -f "$CK/fadex.safetensors" ] && [ -n "${INIT:-}" ]; then cp "$INIT" "$CK/fadex.safetensors"; fi
TASK_ARGS=()
if [ "${TASK:-0}" != 0 ]; then
  TASK_ARGS=(--task-weight "$TASK" --restorer weights/scene_restorer.safetensors
    --restorer-blind weights/scene_restorer_blind.safetensors --lpips-weights .cache/gpu_weights)
fi
if [ "${MIN:-5}" != 0 ]; then
  build-gpu/bin/face2scene -v train fadex --device cuda --teacher weights/fadex.safetensors \
    --size-faces .cache/fadex_sizes/faces --lq-sides 12,128 --degradations 128 --lr ${LR:-1e-4} --max-minutes "${MIN:-5}" \
    -o "$CK" "${TASK_ARGS[@]}" ${ARGS:-} 2>&1 | grep -v "^face2scene: debug" | tail -15
fi
cp "$CK/fadex.safetensors" "$OUT/"
[ -f "$CK/fadex_sizes_loss.csv" ] && cp "$CK/fadex_sizes_loss.csv" "$OUT/" || true
if [ "${BENCH:-1}" = 0 ]; then ls -la "$OUT"; exit 0; fi
build-gpu/bin/bench_face_scale --faces .cache/fadex_eval/faces.tsv --photos .cache/fadex_eval/photos \
  --fadex-native "$CK/fadex.safetensors" --lpips-weights .cache/gpu_weights --device cuda -o "$OUT/bench" ${BENCH_ARGS:-} 2>&1 | tail -15
[ -f "$CK/fadex_state.safetensors" ] && cp "$CK/fadex_state.safetensors" "$OUT/" || true
ls -la "$OUT"
