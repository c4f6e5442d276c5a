#!/usr/bin/env bash
# Real-ESRGAN speed on the GPU machine, ours (CUDA) vs upscayl-bin (Vulkan), whole-process wall
# times: process start, one 512² photo (twice), six photos (cuDNN autotuning off/on, fp16/bf16), both
# engines over a folder of 100; then the agreement of ours (fp16) with upscayl-bin on the six
# photos (SKIP_UB_F100=1 skips upscayl-bin over the 100, ~70 s per model). A shorter cut of realesrgan.sh that fits one device call. Carry .deps, .gl and .cache/esr_gpu
# (scripts/gpu/prepare_realesrgan.sh; E= names another folder, e.g. one without raw/ and with upscayl-bin.gz).
set -uo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
TARGETS=face2scene bash scripts/gpu-build.sh build-gpu | tail -2
F2S=build-gpu/bin/face2scene
E=${E:-.cache/esr_gpu}
T="$(mktemp -d)"
for f in .gl/*.deb; do dpkg -x "$f" / ; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
# upscayl-bin may travel gzipped (11.6 MB -> 3.7 MB) to keep the carry under 64 MiB.
UB="$E/upscayl-bin"; if [ ! -f "$UB" ] && [ -f "$UB.gz" ]; then gunzip -c "$UB.gz" >"$T/upscayl-bin"; UB="$T/upscayl-bin"; fi
chmod +x "$UB"
ms() { date +%s%N | cut -c1-13; }
timed() { local l="$1"; shift; local s; s=$(ms); timeout 150 "$@" >"$T/$l.log" 2>&1; local rc=$?; echo "$l rc=$rc $(( $(ms) - s )) ms"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
"$F2S" import-weights --from "$E/models" --out "$T/w" >/dev/null || { echo "import-weights failed" >&2; exit 1; }
export F2S_WEIGHTS_DIR="$T/w"
P1="$E/photos/01_kodim15.png"
mkdir -p "$T/f100"; i=0
# Real copies: upscayl-bin skips symbolic links in a folder (it wrote nothing for a folder of links).
while [ $i -lt 100 ]; do for p in "$E"/photos/*.png; do [ $i -lt 100 ] && cp "$p" "$T/f100/$(printf %03d $i).png"; i=$((i+1)); done; done
timed "ours_version_1" "$F2S" --version
timed "ours_version_2" "$F2S" --version
timed "ours_info" "$F2S" info
for m in x4fast x4plus; do
  fm=$m; [ $m = x4fast ] && fm=general-x4v3
  for r in 1 2; do
    timed "ub_single_${m}_$r" "$UB" -i "$P1" -o "$T/ub1_$m.png" -n realesrgan-$m -m "$E/models" -s 4 -g 0
    timed "ours_single_${m}_fp16_$r" "$F2S" -q upscale "$P1" -o "$T/o1_$m.png" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite
  done
  timed "ours_single_${m}_fp16_autotune" "$F2S" -q upscale "$P1" -o "$T/o1_$m.png" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite --autotune
  mkdir -p "$T/ub_$m"
  timed "ub_photos_$m" "$UB" -i "$E/photos" -o "$T/ub_$m" -n realesrgan-$m -m "$E/models" -s 4 -g 0 -f png
  timed "ours_photos_${m}_fp16" "$F2S" -q upscale "$E/photos" -o "$T/ours_${m}_fp16" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite
  timed "ours_photos_${m}_fp16_2" "$F2S" -q upscale "$E/photos" -o "$T/ours_${m}_fp16" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite
  timed "ub_photos_${m}_2" "$UB" -i "$E/photos" -o "$T/ub_$m" -n realesrgan-$m -m "$E/models" -s 4 -g 0 -f png
  timed "ours_photos_${m}_fp16_autotune" "$F2S" -q upscale "$E/photos" -o "$T/ours_${m}_at" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite --autotune
  timed "ours_photos_${m}_bf16" "$F2S" -q upscale "$E/photos" -o "$T/ours_${m}_bf16" --model $fm --device cuda --dtype bf16 --tile 0 --overwrite
  "$F2S" -v upscale "$E/photos" -o "$T/ours_v_$m" --model $fm --device cuda --dtype fp16 --tile 0 2>&1 | grep -E "stages|ready|upscale [0-9]"
  mkdir -p "$T/ub100_$m"
  [ "${SKIP_UB_F100:-0}" = 1 ] || timed "ub_f100_${m}" "$UB" -i "$T/f100" -o "$T/ub100_$m" -n realesrgan-$m -m "$E/models" -s 4 -g 0 -f png
  timed "ours_f100_${m}_fp16" "$F2S" -q upscale "$T/f100" -o "$T/o100_$m" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite
  timed "ours_f100_${m}_fp16_autotune" "$F2S" -q upscale "$T/f100" -o "$T/o100_$m" --model $fm --device cuda --dtype fp16 --tile 0 --overwrite --autotune
  ls "$T/ub100_$m" | wc -l | sed "s/^/upscayl-bin f100 outputs: /"; ls "$T/o100_$m" | wc -l | sed "s/^/ours f100 outputs: /"
  du -sh "$T/ub_$m" "$T/ours_${m}_fp16"
  echo "agreement ours_${m}_fp16 vs upscayl-bin:"; "$F2S" compare-images "$T/ours_${m}_fp16" "$T/ub_$m" --threshold 32 --halo 3
done
