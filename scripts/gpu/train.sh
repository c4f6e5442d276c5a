#!/usr/bin/env bash
# One device call of oracle-core training on the GPU machine: build the CLI, resume from the
# checkpoints carried in .cache/ckpt (if any), train FaDeX and/or the scene restorer within
# budgets, and put checkpoints, loss CSVs, the log and GPU usage under $OUT (<= 8 files).
# Carry: .deps (scripts/fetch-gpu-deps.sh), .cache/train (scripts/pack_training_data.sh),
# .cache/gpu_weights (general-x4v3 safetensors + LPIPS weights), .cache/ckpt (previous $OUT).
# Env: FADEX_MIN (default 3; 0 skips), RESTORER_MIN (default 4; 0 skips), LR, EXTRA (more args for
# both), RESTORER_ARGS (more args for the restorer, e.g. --batch 24 --param-oracle), OPTIM=1 (return
# the resume checkpoints too: <name>_state.safetensors, fp32 weights + AdamW moments, exact resume), DATA (default .cache/train), W (weights folder, default
# .cache/gpu_weights), BASE (default $W/realesr-general-x4v3.safetensors), CK (working folder,
# default out/train; without a fadex.safetensors there the restorer uses weights/fadex.safetensors).
# x4plus: DATA=.cache/train_slim W=.cache/gpu_x4 BASE=.cache/gpu_x4/realesrgan-x4plus.safetensors
#   CK=out/train_x4plus FADEX_MIN=0 RESTORER_ARGS="--backbone x4plus --amp --batch 32"
#   (scripts/gpu/slim_training_data.sh keeps the carry under 64 MiB beside the 33 MB base).
set -euo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
FADEX_MIN=${FADEX_MIN:-3}
RESTORER_MIN=${RESTORER_MIN:-4}
LR=${LR:-2e-4}
TARGETS=face2scene bash scripts/gpu-build.sh build-gpu | tail -3
CK=${CK:-out/train}
DATA=${DATA:-.cache/train}
W=${W:-.cache/gpu_weights}
BASE=${BASE:-$W/realesr-general-x4v3.safetensors}
mkdir -p "$CK" "$OUT"
if [ -d .cache/ckpt ]; then cp .cache/ckpt/*.safetensors .cache/ckpt/*.csv "$CK/" 2>/dev/null || true; fi
if [ "$FADEX_MIN" = 0 ] && [ ! -f "$CK/fadex.safetensors" ]; then cp weights/fadex.safetensors "$CK/"; fi
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 5 >"$CK/gpu_usage.csv" 2>/dev/null &
SMI=$!
F2S=build-gpu/bin/face2scene
run() { echo "+ $*"; "$@"; }
if [ "$FADEX_MIN" != 0 ]; then
  run $F2S -v train fadex --device cuda --data "$DATA" -o "$CK" --max-minutes "$FADEX_MIN" --lr "$LR" ${EXTRA:-} 2>&1 | tee "$CK/fadex_log.txt" | grep -v "^face2scene: debug" | tail -25
fi
if [ "$RESTORER_MIN" != 0 ]; then
  run $F2S -v train restorer --device cuda --data "$DATA" -o "$CK" --max-minutes "$RESTORER_MIN" --lr "$LR" \
    --base "$BASE" --lpips-weights "$W" ${EXTRA:-} ${RESTORER_ARGS:-} 2>&1 | tee "$CK/restorer_log.txt" | grep -v "^face2scene: debug" | tail -25
fi
kill $SMI 2>/dev/null || true
# At most 8 files come back: FaDeX only when it trained, the resume checkpoints only with OPTIM=1.
files="restorer restorer_blind restorer_params param_encoder"
[ "$FADEX_MIN" != 0 ] && files="fadex $files"
[ "${OPTIM:-0}" = 1 ] && files="$files restorer_state"
[ "${OPTIM:-0}" = 1 ] && [ "$FADEX_MIN" != 0 ] && files="$files fadex_state"
for f in $files; do
  if [ -f "$CK/$f.safetensors" ]; then cp "$CK/$f.safetensors" "$OUT/"; fi
done
tar -C "$CK" -czf "$OUT/logs.tgz" $(cd "$CK" && ls *.csv *.txt 2>/dev/null)
ls -la "$OUT"
