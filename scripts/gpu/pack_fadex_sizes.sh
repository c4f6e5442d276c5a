#!/usr/bin/env bash
# Packs what the face-size FaDeX needs on the GPU machine (issue #19), here, from ../shared/data:
#   .cache/fadex_sizes/faces/  clean aligned TRAINING faces: CelebA-ID train identities (every 4th
#                              face, 256², as they are) + London/Canada train identities of the Ref-FR
#                              split (bench/ref_fr_split.tsv), resized to 256² (JPEG q90)
#   .cache/fadex_eval/         the held-out evaluation of bench_face_scale: the CelebA-ID TEST
#                              identities' whole scene photos, the face list (bench_face_scale
#                              --prepare, dlib here: the GPU build has no dlib), and the
#                              general-x4v3 base weights the scene restorer sits on
# Never packed: any test identity's faces. Usage: bash scripts/gpu/pack_fadex_sizes.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${F2S_DATA:-../shared/data}
PY=/usr/bin/python3  # Debian's, with python3-pil
rm -rf .cache/fadex_sizes .cache/fadex_eval
mkdir -p .cache/fadex_sizes/faces .cache/fadex_eval/weights
i=0
for f in "$DATA"/faces/celeba_id/train/*/faces/*.jpg; do
  if [ $((i % 4)) -eq 0 ]; then cp "$f" ".cache/fadex_sizes/faces/celeba_$(basename "$(dirname "$(dirname "$f")")")_$(basename "$f")"; fi
  i=$((i + 1))
done
awk -F'\t' '$1 == "train" && $3 ~ /^faces\/hq\// {print $2 "\t" $3}' bench/ref_fr_split.tsv |
  while IFS=$'\t' read -r id dir; do
    for f in "$DATA/$dir/${id#*_}"*; do echo "$f"; done
  done >/tmp/fadex_sizes_hq.txt
$PY - /tmp/fadex_sizes_hq.txt .cache/fadex_sizes/faces <<'PY'
import sys, os
from PIL import Image
files = [l.strip() for l in open(sys.argv[1]) if l.strip() and os.path.exists(l.strip())]
for f in files:
    im = Image.open(f).convert("RGB").resize((256, 256), Image.LANCZOS)
    im.save(os.path.join(sys.argv[2], "hq_" + os.path.basename(os.path.dirname(f)) + "_" + os.path.splitext(os.path.basename(f))[0] + ".jpg"), quality=90)
print(len(files), "HQ training faces")
PY
# Evaluation: test identities' scenes (held out from every trainer) and their faces' landmarks.
mkdir -p .cache/fadex_eval/photos
cp -r "$DATA"/faces/celeba_id/test/*/ .cache/fadex_eval/photos/ 2>/dev/null
find .cache/fadex_eval/photos -path '*/faces/*' -delete
find .cache/fadex_eval/photos -type d -name faces -empty -delete
# The carry is 64 MiB with the 40 MB tree: photos over 1400 px are re-saved at 1400 (JPEG q92),
# which only sharpens the ground truth (the bench rescales every photo to its face size anyway).
find .cache/fadex_eval/photos -name '*.jpg' | $PY -c '
import sys
from PIL import Image
for f in map(str.strip, sys.stdin):
    im = Image.open(f)
    if max(im.size) > 1400:
        k = 1400 / max(im.size)
        im.convert("RGB").resize((round(im.size[0] * k), round(im.size[1] * k)), Image.LANCZOS).save(f, quality=92)
'
build/bin/bench_face_scale --prepare --photos .cache/fadex_eval/photos -o .cache/fadex_eval/faces.tsv
cp "${F2S_CACHE:-$HOME/.cache/face2scene}/weights/realesr-general-x4v3.safetensors" .cache/fadex_eval/weights/
du -sh .cache/fadex_sizes .cache/fadex_eval
ls .cache/fadex_sizes/faces | wc -l
