#!/usr/bin/env bash
# Real-ESRGAN speed on the GPU machine, ours (CUDA) vs upscayl-bin (Vulkan), whole-process wall
# times: one 512² photo (twice), six photos, and ours over a folder of 100; then the agreement of
# ours (fp32, fp16) with upscayl-bin on the six photos. A shorter cut of realesrgan.sh that fits
# one device call. Carry .deps, .gl and .cache/esr_gpu (scripts/gpu/prepare_realesrgan.sh).
set -uo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
TARGETS=face2scene bash scripts/gpu-build.sh build-gpu | tail -2
F2S=build-gpu/bin/face2scene
E=${E:-.cache/esr_gpu}
T="$(mktemp -d)"
for f in .gl/*.deb; do dpkg -x "$f" / ; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
UB="$E/upscayl-bin"; chmod +x "$UB"
ms() { date +%s%N | cut -c1-13; }
timed() { local l="$1"; shift; local s; s=$(ms); timeout 150 "$@" >"$T/$l.log" 2>&1; local rc=$?; echo "$l rc=$rc $(( $(ms) - s )) ms"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
"$F2S" import-weights --from "$E/models" --out "$T/w" >/dev/null || { echo "import-weights failed" >&2; exit 1; }
export F2S_WEIGHTS_DIR="$T/w"
P1="$E/photos/01_kodim15.png"
mkdir -p "$T/f100"; i=0
while [ $i -lt 100 ]; do for p in "$E"/photos/*.png; do [ $i -lt 100 ] && ln -sf "$(realpath "$p")" "$T/f100/$(printf %03d $i).png"; i=$((i+1)); done; done
for m in x4fast x4plus; do
  fm=$m; [ $m = x4fast ] && fm=general-x4v3
  for r in 1 2; do
    timed "ub_single_${m}_$r" "$UB" -i "$P1" -o "$T/ub1_$m.png" -n realesrgan-$m -m "$E/models" -s 4 -g 0
    timed "ours_single_${m}_fp16_$r" "$F2S" -q upscale "$P1" -o "$T/o1_$m.png" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite
  done
  mkdir -p "$T/ub_$m"
  timed "ub_photos_$m" "$UB" -i "$E/photos" -o "$T/ub_$m" -n realesrgan-$m -m "$E/models" -s 4 -g 0 -f png
  for dt in fp16 fp32; do
    timed "ours_photos_${m}_$dt" "$F2S" -q upscale "$E/photos" -o "$T/ours_${m}_$dt" --model $fm --device cuda --dtype $dt --tile 0 --overwrite
  done
  "$F2S" -v upscale "$E/photos" -o "$T/ours_v_$m" --model $fm --device cuda --dtype fp16 --tile 0 2>&1 | grep stages
  timed "ours_f100_${m}_fp16" "$F2S" -q upscale "$T/f100" -o "$T/o100_$m" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite
  for dt in fp32 fp16; do
    echo "agreement ours_${m}_$dt vs upscayl-bin:"; "$F2S" compare-images "$T/ours_${m}_$dt" "$T/ub_$m" --threshold 32 --halo 3
  done
done
