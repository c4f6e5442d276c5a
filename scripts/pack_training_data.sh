#!/usr/bin/env bash
# Packs the oracle core's training data into .cache/train (ignored by git; carried to the GPU
# machine) and writes bench/heldout.sha256, the checksums of every image the benchmarks use.
#   faces/   LFW deep-funneled photos of the training persons (every 10th person, sorted by name,
#            is held out for the benchmark)
#   scenes/  natural/train (BSDS500 train) as is + scenes/people_hq training photos (every 3rd,
#            sorted by name, is held out) resized to <= 1024 px, JPEG q95, alpha dropped
# Never packed: Set5/14, Kodak24, BSD100, Urban100, McMaster, BSDS500_test, the held-out people_hq
# photos and faces, celebref, faces/other, scenes/real_degraded and scenes/group. The trainer
# checks every file it reads against bench/heldout.sha256 as well.
# Usage: scripts/pack_training_data.sh [OUT=.cache/train]   (DATA=../shared/data by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${1:-.cache/train}
command -v convert >/dev/null || { echo "pack: ImageMagick 'convert' is needed (apt-get install imagemagick)" >&2; exit 1; }
[ -d "$DATA/natural/train" ] || { echo "pack: $DATA/natural/train not found (set DATA=...)" >&2; exit 1; }

list_images() { find "$1" -maxdepth 1 -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.tif' \) | LC_ALL=C sort; }

# ---- held-out list (benchmark images), committed so the trainer can enforce it anywhere ----
heldout=$(mktemp)
for d in Set5 Set14 Kodak24 BSD100 Urban100 McMaster BSDS500_test; do list_images "$DATA/natural/$d"; done >>"$heldout"
i=0; list_images "$DATA/scenes/people_hq" | while read -r f; do [ $((i % 3)) -eq 0 ] && echo "$f"; i=$((i + 1)); done >>"$heldout"
i=0; find "$DATA/faces/lfw" -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort | while read -r p; do
  [ $((i % 10)) -eq 0 ] && list_images "$p"; i=$((i + 1)); done >>"$heldout"
find "$DATA/faces/celebref" "$DATA/faces/other" "$DATA/scenes/real_degraded" "$DATA/scenes/group" -type f \
  \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) | LC_ALL=C sort >>"$heldout"
mkdir -p bench
{ echo "# sha256 of every benchmark / held-out image (scripts/pack_training_data.sh); training refuses these";
  tr '\n' '\0' <"$heldout" | xargs -0 sha256sum | sed "s|  $DATA/|  |"; } >bench/heldout.sha256
echo "pack: $(grep -vc '^#' bench/heldout.sha256) held-out images listed in bench/heldout.sha256"

# ---- training set ----
rm -rf "$OUT"; mkdir -p "$OUT/faces" "$OUT/scenes"
check() { # refuses a source file whose content is held out
  if grep -q "^$(sha256sum "$1" | cut -c1-64) " bench/heldout.sha256; then echo "pack: $1 is held out" >&2; exit 1; fi; }
i=0; find "$DATA/faces/lfw" -mindepth 1 -maxdepth 1 -type d | LC_ALL=C sort | while read -r p; do
  if [ $((i % 10)) -ne 0 ]; then list_images "$p" | while read -r f; do check "$f"; cp "$f" "$OUT/faces/"; done; fi
  i=$((i + 1)); done
list_images "$DATA/natural/train" | while read -r f; do check "$f"; cp "$f" "$OUT/scenes/"; done
i=0; list_images "$DATA/scenes/people_hq" | while read -r f; do
  if [ $((i % 3)) -ne 0 ]; then check "$f"; b=$(basename "${f%.*}");
    convert "$f" -alpha off -colorspace sRGB -resize '1024x1024>' -quality 95 "$OUT/scenes/people_$b.jpg"; fi
  i=$((i + 1)); done
echo "pack: $(ls "$OUT/faces" | wc -l) faces, $(ls "$OUT/scenes" | wc -l) scenes, $(du -sh "$OUT" | cut -f1) in $OUT"
