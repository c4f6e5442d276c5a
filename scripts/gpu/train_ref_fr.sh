#!/usr/bin/env bash
# One device call of Ref-FR training on the GPU machine: build the CLI, resume from the checkpoint
# folder (kept on a warm machine; else from .cache/ref_fr_ckpt carried back from an earlier $OUT),
# train Ref-FR and its blind twin within the budget, and put the weights (bf16 files that come back
# under 16 MiB), the loss CSV, the log, the sample grid and GPU usage under $OUT.
# Carry: .deps (scripts/fetch-gpu-deps.sh), .cache/ref_fr (face2scene train pack-ref-fr),
# .cache/gpu_weights (LPIPS weights), optionally .cache/ref_fr_ckpt.
# Env: MIN (training minutes, default 6), ARGS (more `train ref-fr` arguments), CK (working folder,
# default out/ref_fr), W (weights folder, default .cache/gpu_weights). The identity loss uses
# $W/faceres.safetensors when it is there (copy it from <cache>/weights, 7 MB; never the dlib judge),
# or $ID when set, else none.
set -euo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
MIN=${MIN:-6}
CK=${CK:-out/ref_fr}
W=${W:-.cache/gpu_weights}
IDW=none
[ -f "$W/faceres.safetensors" ] && IDW="$W/faceres.safetensors"
# ID: the faceres file elsewhere (it may travel in another call than the LPIPS weights: the carry
# limit is 64 MiB with the tracked tree).
[ -n "${ID:-}" ] && IDW=$ID
TARGETS="face2scene bench_ref_fr_speed" bash scripts/gpu-build.sh build-gpu | tail -3
mkdir -p "$CK" "$OUT"
if [ ! -f "$CK/ref_fr.safetensors" ] && [ -d .cache/ref_fr_ckpt ]; then cp .cache/ref_fr_ckpt/* "$CK/" 2>/dev/null || true; fi
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 5 >"$CK/gpu_usage.csv" 2>/dev/null &
SMI=$!
set -x
build-gpu/bin/face2scene -v train ref-fr --device cuda --faces .cache/ref_fr -o "$CK" --max-minutes "$MIN" \
  --lpips-weights "$W" --identity-weights "$IDW" ${ARGS:-} 2>&1 | tee -a "$CK/ref_fr_log.txt" | grep -v "debug" | tail -30
set +x
kill $SMI 2>/dev/null || true
# bf16 copies come back (a 5 M-parameter fp32 file with its state would not fit); the fp32 files
# and the optimiser state stay in $CK for the next warm call.
for f in ref_fr ref_fr_blind; do
  build-gpu/bin/face2scene convert-weights "$CK/$f.safetensors" "$OUT/$f.safetensors" --dtype bf16
done
cp "$CK/ref_fr_samples.png" "$OUT/" 2>/dev/null || true
# Speed on this GPU: a batch of 64 faces with 3 references each (fp32 and bf16).
for dt in fp32 bf16; do
  build-gpu/bin/bench_ref_fr_speed --weights "$CK/ref_fr.safetensors" --device cuda --batch 64 --refs 3 --runs 30 --dtype $dt \
    2>&1 | tee -a "$CK/ref_fr_speed.txt"
done
nvidia-smi --query-gpu=name --format=csv,noheader | tee -a "$CK/ref_fr_speed.txt"
tar -C "$CK" -czf "$OUT/logs.tgz" $(cd "$CK" && ls *.csv *.txt 2>/dev/null)
ls -la "$OUT"
