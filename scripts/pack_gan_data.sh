#!/usr/bin/env bash
# Packs the training data of the GAN fine-tuning of the scene restorer (issue 21) into
# .cache/train_gan (ignored by git; carried to the GPU machine beside the tree, 40 MB of tracked
# files, and .deps, 2.5 MB, within the 64 MiB carry: it must stay under ~20 MB):
#   faces/   LFW deep-funneled training persons (every 10th person held out, as
#            pack_training_data.sh), every 4th person, centre 128² crop (what the
#            trainer's --face-crop 128 takes; FaDeX reads the degradation code from these), JPEG q95
#   scenes/  BSDS500 train, every 4th photo, as is (natural textures)
#   people/  whole-photo crop sources, drawn with --people-fraction and cropped at random scales:
#            scenes/people_hq training photos (every 3rd held out, as pack_training_data.sh) at
#            <= 1024 px, and the Face Research Lab London/Canada faces (CC BY 4.0) of the Ref-FR
#            *train* identities (bench/ref_fr_split.tsv) at 384² (skin, hair, flat studio walls)
#   w/       the training-time weights the GPU machine lacks: realesr-general-x4v3 (the frozen base,
#            BSD-3-Clause, from the weights cache) and the LPIPS-squeeze weights (lpips_v0.1 +
#            squeezenet from ../shared/data/weights), and NIQE/BRISQUE's models for bench_oracle
#            --metric-weights: one carry path for scripts/gpu/train_gan.sh and the benchmark
# Natural bokeh in these photos stays content: it is in the clean target and degraded on top.
# Every source file is checked against bench/heldout.sha256; the trainer checks again.
# Usage: scripts/pack_gan_data.sh [OUT=.cache/train_gan]   (DATA=../shared/data by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${1:-.cache/train_gan}
command -v convert >/dev/null || { echo "pack: ImageMagick 'convert' is needed (apt-get install imagemagick)" >&2; exit 1; }
[ -f bench/heldout.sha256 ] || { echo "pack: bench/heldout.sha256 missing (scripts/pack_training_data.sh writes it)" >&2; exit 1; }
[ -d "$DATA/natural/train" ] || { echo "pack: $DATA/natural/train not found (set DATA=...)" >&2; exit 1; }
list_images() { find "$1" -maxdepth 1 -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) | LC_ALL=C sort; }
check() { # refuses a source file whose content is held out
  if grep -q "^$(sha256sum "$1" | cut -c1-64) " bench/heldout.sha256; then echo "pack: $1 is held out" >&2; exit 1; fi; }

rm -rf "$OUT"; mkdir -p "$OUT/faces" "$OUT/scenes" "$OUT/people"
# faces: persons i % 10 != 0 are training persons; of those, those with i % 4 == 1 (size budget)
i=0; find "$DATA/faces/lfw" -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort | while read -r p; do
  if [ $((i % 10)) -ne 0 ] && [ $((i % 4)) -eq 1 ]; then list_images "$p" | while read -r f; do
    check "$f"; convert "$f" -gravity center -crop 128x128+0+0 +repage -quality 95 "$OUT/faces/$(basename "${f%.*}").jpg"; done; fi
  i=$((i + 1)); done
i=0; list_images "$DATA/natural/train" | while read -r f; do
  if [ $((i % 4)) -eq 0 ]; then check "$f"; cp "$f" "$OUT/scenes/"; fi; i=$((i + 1)); done
i=0; list_images "$DATA/scenes/people_hq" | while read -r f; do
  if [ $((i % 3)) -ne 0 ]; then check "$f"; b=$(basename "${f%.*}")
    convert -quiet "$f" -alpha off -colorspace sRGB -resize '1024x1024>' -quality 92 "$OUT/people/people_$b.jpg"; fi
  i=$((i + 1)); done
grep -P '^train\t(london|canada)_' bench/ref_fr_split.tsv | while IFS=$'\t' read -r _ id dir; do
  n=${id#*_}  # london_001 -> 001_neutral.jpg, 001_smiling.jpg; canada_003f -> 003f.jpg
  for f in "$DATA/$dir/${n}"_*.jpg "$DATA/$dir/${n}".jpg; do
    [ -f "$f" ] || continue
    check "$f"; convert "$f" -resize 384x384 -quality 88 "$OUT/people/hq_${id}_$(basename "$f")"
  done
done
mkdir -p "$OUT/w"
base=${F2S_CACHE:-$HOME/.cache/face2scene}/weights/realesr-general-x4v3.safetensors
[ -f "$base" ] || { echo "pack: $base not found (scripts/install_models.sh)" >&2; exit 1; }
cp "$base" "$OUT/w/"
cp -r "$DATA/weights/lpips_v0.1" "$DATA/weights/squeezenet1_1_torchvision_ncnn_fp16" "$DATA/weights/brisque" "$OUT/w/"
mkdir -p "$OUT/w/niqe" && cp "$DATA/weights/niqe/niqe_pris_params.npz" "$OUT/w/niqe/"  # bench_oracle --metric-weights
size=$(du -sm "$OUT" | cut -f1)
[ "$size" -le 21 ] || echo "pack: warning: $size MB is more than the ~20 MB the GPU carry leaves beside the tree" >&2
echo "pack: $(ls "$OUT/faces" | wc -l) faces, $(ls "$OUT/scenes" | wc -l) scenes, $(ls "$OUT/people" | wc -l) people photos, $(du -sh "$OUT" | cut -f1) in $OUT"
