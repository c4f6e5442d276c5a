#!/usr/bin/env bash
# Side-by-side grid of real degraded photos: bicubic ×4 | general-x4v3 ×4 | x4plus ×4, one 64×64
# input crop around a face per row (256×256 panels), written to docs/images/realesrgan_grid.jpg.
#
#   scripts/make_realesrgan_grid.sh [--bin build/bin/face2scene] [--data ../shared/data] [--out FILE]
#
# Each photo is upscaled WHOLE by `face2scene upscale` (default CPU settings: auto tiles, fp32) and
# the panel is cropped from the ×4 result afterwards, so the panels are exactly what the CLI writes.
# Bicubic: ImageMagick -resize 400% with the Keys cubic a = -0.75 (-filter Cubic, B = 0, C = 0.75),
# the kernel of torch's bicubic used for the bicubic rows of docs/RESULTS.md. Face positions came
# from `face2scene faces` (dlib HOG boxes); the crops below are 64×64 squares on those boxes.
# Needs ImageMagick (convert, montage) and the Real-ESRGAN weights (scripts/install_models.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${F2S_BIN:-$here/build/bin/face2scene}"
data="${F2S_DATA:-$here/../shared/data}"
out="$here/docs/images/realesrgan_grid.jpg"
threads="${THREADS:-2}"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "make_realesrgan_grid.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in convert montage; do
  command -v "$tool" >/dev/null || { echo "make_realesrgan_grid.sh: ImageMagick '$tool' not found" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "make_realesrgan_grid.sh: $bin not found (build first, or --bin)" >&2; exit 1; }
src="$data/scenes/real_degraded"

# file  x  y  (top-left corner of the 64×64 input crop; dlib face box in the comment)
rows=(
  "bopb_scratch_c.png   102 142"   # old b/w print with scratches; face box 97,138-172,213 (75 px: crop is tight)
  "diffbir_real47_1.jpg  56  44"   # tiny b/w photo, 3 men; face box 62,50-113,102
  "codeformer_01.jpg    159  67"   # tiny web JPEG, 4 young men; face box 165,73-217,125
  "dfdnet_test3.jpg     142  53"   # heavily compressed TV still; face box 143,53-205,116
)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
panels=()
i=0
for row in "${rows[@]}"; do
  read -r name x y <<<"$row"
  stem="${name%.*}"
  # 8-bit RGB PNG without alpha (the alpha of these photos is opaque anyway).
  convert "$src/$name" -alpha off -colorspace sRGB -type TrueColor -depth 8 "PNG24:$tmp/$stem.png"
  "$bin" -q --threads "$threads" upscale "$tmp/$stem.png" -o "$tmp/${stem}_fast.png" --model general-x4v3
  "$bin" -q --threads "$threads" upscale "$tmp/$stem.png" -o "$tmp/${stem}_plus.png" --model x4plus
  convert "$tmp/$stem.png" -filter Cubic -define filter:b=0 -define filter:c=0.75 -resize 400% "$tmp/${stem}_bic.png"
  geom="256x256+$((4 * x))+$((4 * y))"
  for m in bic fast plus; do
    convert "$tmp/${stem}_$m.png" -crop "$geom" +repage "$tmp/p${i}_$m.png"
    panels+=("$tmp/p${i}_$m.png")
  done
  i=$((i + 1))
done

mkdir -p "$(dirname "$out")"
montage "${panels[@]}" -tile 3x -geometry 256x256+2+2 -background white "$tmp/grid.png"
# Column titles above the grid.
convert -size 780x22 xc:white -font DejaVu-Sans -pointsize 15 -fill black \
  -draw "text 60,16 'bicubic x4'" -draw "text 310,16 'general-x4v3'" -draw "text 590,16 'x4plus'" "$tmp/head.png"
convert "$tmp/head.png" "$tmp/grid.png" -gravity center -append -strip -quality 88 "$tmp/grid.jpg"
mv "$tmp/grid.jpg" "$out"
echo "wrote $out ($(stat -c %s "$out") bytes)"
