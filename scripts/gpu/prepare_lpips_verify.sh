#!/usr/bin/env bash
# Runs HERE (CPU machine, with ../shared/data): makes out/lpips_verify/ for scripts/gpu/verify_lpips.sh:
#   a/*.png b/*.png               image pairs (random with a fixed seed + real ones from shared data)
#   lpips_squeeze.safetensors     the weights face2scene converted (ncnn SqueezeNet + LPIPS .pth), fp32
#   taps_<name>.safetensors       face2scene's 7 backbone taps for two of the 'a' images
#   cpp/metrics.csv               face2scene's LPIPS (LibTorch CPU) for every pair
# Usage: scripts/gpu/prepare_lpips_verify.sh [path/to/face2scene]   (default build/bin/face2scene)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-build/bin/face2scene}
data=${F2S_DATA:-../shared/data}
dir=out/lpips_verify
rm -rf "$dir"
mkdir -p "$dir"
/usr/bin/python3 scripts/gpu/make_lpips_pairs.py "$data" "$dir"
"$bin" -q metrics --export-lpips "$dir" --lpips-weights "$data/weights" \
  --pred "$dir/a/rand_100x75.png" "$dir/a/butterfly_256_jpeg30.png"
"$bin" -q --threads 2 metrics --pred "$dir/a" --gt "$dir/b" -m lpips --lpips-weights "$data/weights" -o "$dir/cpp" >/dev/null
du -sh "$dir"
echo "carry out/lpips_verify to the GPU machine and run scripts/gpu/verify_lpips.sh"
