#!/usr/bin/env bash
# One device call of the scene restorer's GAN fine-tuning (issue 21; docs/models.md, "GAN restorer"):
# build the CLI, fine-tune the shipped L1 restorer (weights/scene_restorer.safetensors) and its blind
# twin on the same batches with L1 + LPIPS + GAN, each against its own U-Net discriminator, and put
# the fp16 weights, the sample grid, the loss CSV, the log and GPU usage under $OUT.
# Carry: .deps (scripts/fetch-gpu-deps.sh) and .cache/train_gan (scripts/pack_gan_data.sh: crops,
# people photos, the general-x4v3 base and LPIPS weights in w/); optionally .cache/gan_ckpt (an
# earlier $OUT: restorer.safetensors + restorer_blind.safetensors, to go on from on a cold machine).
# A warm machine resumes exactly from $CK (the checkpoint with both critics and every moment stays
# there: ~60 MB, too big to come back).
# Env: MIN (training minutes, default 7), ARGS (more `train restorer` arguments, e.g. --amp,
# --disc-projection, --disc-feat 32, --batch 24), CK (working folder, default out/train_gan), DATA
# (default .cache/train_gan), W (default $DATA/w), BASE (default $W/realesr-general-x4v3.safetensors).
set -euo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
MIN=${MIN:-7}
CK=${CK:-out/train_gan}
DATA=${DATA:-.cache/train_gan}
W=${W:-$DATA/w}
BASE=${BASE:-$W/realesr-general-x4v3.safetensors}
for f in "$DATA/faces" "$DATA/people" "$BASE" "$W/lpips_v0.1"; do
  [ -e "$f" ] || { echo "train_gan: $f missing (scripts/pack_gan_data.sh, carry .cache/train_gan)" >&2; exit 1; }
done
TARGETS=face2scene bash scripts/gpu-build.sh build-gpu | tail -3
mkdir -p "$CK" "$OUT"
if [ ! -f "$CK/restorer.safetensors" ] && [ -d .cache/gan_ckpt ]; then cp .cache/gan_ckpt/restorer*.safetensors "$CK/"; fi
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 5 >"$CK/gpu_usage.csv" 2>/dev/null &
SMI=$!
set -x
build-gpu/bin/face2scene -v train restorer --device cuda --data "$DATA" -o "$CK" --max-minutes "$MIN" \
  --base "$BASE" --lpips-weights "$W" --fadex weights/fadex.safetensors --init weights \
  --lr 1e-4 --disc-lr 1e-4 --l1-weight 1 --perceptual-weight 1 --gan-weight 0.1 --gan-warmup 300 \
  --people-fraction 0.5 --dof-prob 0.3 --batch 16 --fp32-moments-max-mb 400 ${ARGS:-} 2>&1 \
  | tee -a "$CK/restorer_log.txt" | grep -v "debug" | tail -30
set +x
kill $SMI 2>/dev/null || true
# fp16 copies come back (4.4 MB each); rename them to weights/scene_restorer_gan.safetensors and
# weights/scene_restorer_blind_gan.safetensors only when the held-out benchmark improves.
for f in restorer restorer_blind; do
  build-gpu/bin/face2scene convert-weights "$CK/$f.safetensors" "$OUT/$f.safetensors" --dtype fp16
done
cp "$CK/restorer_samples.png" "$OUT/" 2>/dev/null || true
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$CK/gpu_name.txt"
tar -C "$CK" -czf "$OUT/logs.tgz" $(cd "$CK" && ls *.csv *.txt 2>/dev/null)
ls -la "$OUT"
