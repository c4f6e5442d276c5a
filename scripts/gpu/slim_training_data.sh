#!/usr/bin/env bash
# A smaller copy of the packed training data, for device calls whose carry must also hold the
# 33 MB x4plus base (tree + carry <= 64 MiB): every 2nd face cut to the 128² centre the trainer
# uses anyway (JPEG q95), every 4th BSDS500-train scene as is, the people_hq training photos
# resized to <= 768 px (q95). Everything comes from an already checked pack
# (scripts/pack_training_data.sh), so no held-out image can enter.
# Usage: scripts/gpu/slim_training_data.sh [SRC=.cache/train] [DST=.cache/train_slim]
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${1:-.cache/train}
DST=${2:-.cache/train_slim}
[ -d "$SRC/faces" ] || { echo "slim: $SRC/faces not found (run scripts/pack_training_data.sh)" >&2; exit 1; }
rm -rf "$DST"; mkdir -p "$DST/faces" "$DST/scenes"
i=0; for f in $(ls "$SRC/faces" | LC_ALL=C sort); do
  [ $((i % 2)) -eq 0 ] && convert "$SRC/faces/$f" -gravity center -crop 128x128+0+0 +repage -quality 95 "$DST/faces/$f"
  i=$((i + 1)); done
i=0; for f in $(ls "$SRC/scenes" | LC_ALL=C sort); do
  case "$f" in
    people_*) convert "$SRC/scenes/$f" -resize '768x768>' -quality 95 "$DST/scenes/$f" ;;
    *) [ $((i % 4)) -eq 0 ] && cp "$SRC/scenes/$f" "$DST/scenes/"; i=$((i + 1)) ;;
  esac; done
echo "slim: $(ls "$DST/faces" | wc -l) faces, $(ls "$DST/scenes" | wc -l) scenes, $(du -sh "$DST" | cut -f1) in $DST"
