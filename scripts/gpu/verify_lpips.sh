#!/usr/bin/env bash
# Runs on the GPU machine from the repo root (< 1 min): an independent LPIPS (torchvision
# squeezenet1_1 + the lpips package's formulas, in PyTorch) on the pairs and weights that
# scripts/gpu/prepare_lpips_verify.sh made on the CPU machine (carry: out/lpips_verify).
# If build-gpu/bin/face2scene exists, face2scene's own CUDA path is compared too.
# Writes $OUT/lpips_verify.json and prints per-pair values and the max abs differences.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/lpips_verify_result}
dir=${1:-out/lpips_verify}
mkdir -p "$OUT"
if [ ! -f "$dir/lpips_squeeze.safetensors" ]; then
  echo "verify_lpips: $dir/lpips_squeeze.safetensors missing: run scripts/gpu/prepare_lpips_verify.sh here and carry out/lpips_verify" >&2
  exit 2
fi
if [ -x build-gpu/bin/face2scene ]; then
  build-gpu/bin/face2scene -q metrics --pred "$dir/a" --gt "$dir/b" -m lpips --lpips-weights "$dir" \
    --device cuda -o "$OUT/cpp_cuda" >/dev/null || echo "verify_lpips: face2scene CUDA run failed (continuing)"
fi
python3 scripts/gpu/verify_lpips.py "$dir" "$OUT"
