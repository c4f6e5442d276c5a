#!/usr/bin/env bash
# Run HERE before scripts/gpu/pipeline_speed.sh (issue #19's GPU speed: a folder of 100 people photos
# 512² → 2048², faces included). The GPU machine has no dlib, and dlib's 68-point landmark model is
# 100 MB, more than one device call may carry beside the tree (64 MiB in all), so this stages, in
# git-ignored folders, pieces of about 16 MB that warm calls carry one after another (ignored paths
# stay on the GPU machine between warm calls):
#   .cache/dlib_src/dlib_src.tar.xz   dlib 19.24's library sources (Debian's source package, dfsg;
#                                     Boost Software License), built there without BLAS/GUI/codecs
#   .cache/lm68_a … lm68_e/part       shape_predictor_68_face_landmarks.dat (libdlib-data), xz -9
#                                     (63 MB), split in five, with its SHA-256 in lm68_e
#   .cache/tp_photos/*.jpg            100 photos of people (people_hq, the CelebA test identities'
#                                     scenes, the group photos), centre-cropped to 512², degraded
#                                     (moderate, same size), JPEG q95; never committed
#   .cache/gx4v3/                     realesr-general-x4v3.safetensors (2.4 MB), the scene restorer's base
#   .cache/ssd_w/                     face-api's SSD face detector, converted, fp16 (11 MB)
# Calls (scripts/gpu/pipeline_speed.sh names what it still lacks; the carry is counted in disk blocks,
# so keep each call's carry under ~19 MB beside the ~46 MB tree):
#   1: .deps .cache/dlib_src .cache/lm68_a .cache/gx4v3   (builds dlib and face2scene with it)
#   2: .cache/lm68_b .cache/tp_photos   3: .cache/lm68_c   4: .cache/lm68_d .cache/ssd_w
#   5: .cache/lm68_e (then it measures)
# Session 13 ran it this way on an H100 (docs/pipeline.md, "GPU speed"): a cold start cost ~300 s of
# the 1,800 s budget; each transfer-only warm call 10–25 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${F2S_DATA:-../shared/data}"
LM=/usr/share/dlib/shape_predictor_68_face_landmarks.dat
[ -f "$LM" ] || { echo "needs libdlib-data ($LM)" >&2; exit 1; }
[ -x build/bin/face2scene ] || { echo "build face2scene first (build/bin/face2scene)" >&2; exit 1; }
/usr/bin/python3 -c "import PIL" 2>/dev/null || { echo "needs Debian's python3-pil (apt-get install python3-pil)" >&2; exit 1; }

# dlib's sources: `apt-get source` with a deb-src line of its own (the machine's sources.list has none).
if [ ! -s .cache/dlib_src/dlib_src.tar.xz ]; then
  t=$(mktemp -d)
  mkdir -p "$t/lists/partial" .cache/dlib_src
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" >"$t/src.list"
  o=(-oDir::Etc::SourceList="$t/src.list" -oDir::Etc::SourceParts=/dev/null -oDir::State::Lists="$t/lists")
  apt-get "${o[@]}" update >/dev/null
  (cd "$t" && apt-get "${o[@]}" source --download-only dlib >/dev/null 2>&1)
  orig=$(ls "$t"/dlib_*.orig.tar.bz2 | grep -v models)
  tar -C "$t" -xjf "$orig" --wildcards '*/dlib' '*/LICENSE.txt'
  src=$(ls -d "$t"/dlib-*/)
  rm -rf "$src/dlib/test"
  tar -C "$t" -cJf .cache/dlib_src/dlib_src.tar.xz "$(basename "$src")"
  rm -rf "$t"
fi

if [ ! -s .cache/lm68_e/part ]; then
  rm -rf .cache/lm68_? /tmp/lm68_part_*
  xz -9 -T0 -c "$LM" >/tmp/lm68.dat.xz
  split -n 5 -d /tmp/lm68.dat.xz /tmp/lm68_part_ && rm /tmp/lm68.dat.xz
  i=0
  for l in a b c d e; do
    mkdir -p .cache/lm68_$l && mv /tmp/lm68_part_0$i .cache/lm68_$l/part
    i=$((i + 1))
  done
  (cd /usr/share/dlib && sha256sum shape_predictor_68_face_landmarks.dat) >.cache/lm68_e/sha256
fi

[ -s .cache/ssd_w/faceapi_ssd_mobilenetv1.safetensors ] || { mkdir -p .cache/ssd_w &&
  build/bin/face2scene -q import-faceapi --model ssd --fp16 --out .cache/ssd_w/faceapi_ssd_mobilenetv1.safetensors; }
W="${F2S_CACHE:-$HOME/.cache/face2scene}/weights/realesr-general-x4v3.safetensors"
[ -s .cache/gx4v3/realesr-general-x4v3.safetensors ] || { mkdir -p .cache/gx4v3 && cp "$W" .cache/gx4v3/; }

if [ "$(ls .cache/tp_photos/*.jpg 2>/dev/null | wc -l)" -lt 100 ]; then
  t=$(mktemp -d)
  mkdir -p "$t/clean" "$t/lq" .cache/tp_photos
  ls "$DATA"/scenes/people_hq/*.{png,jpg} "$DATA"/faces/celeba_id/test/*/scenes/*.jpg "$DATA"/scenes/group/*.jpg \
    "$DATA"/scenes/solvay1927.jpg "$DATA"/scenes/real_degraded/*.png 2>/dev/null |
    head -100 >"$t/list"
  /usr/bin/python3 - "$t/list" "$t/clean" <<'PY'
import sys, os
from PIL import Image
for i, p in enumerate(open(sys.argv[1]).read().split()):
    im = Image.open(p).convert("RGB")
    s = min(im.size)
    l, t = (im.width - s) // 2, (im.height - s) // 2
    im.crop((l, t, l + s, t + s)).resize((512, 512), Image.LANCZOS).save(f"{sys.argv[2]}/{i:03d}.png")
PY
  build/bin/face2scene -q degrade "$t/clean" -o "$t/lq" --preset moderate --seed 1 --keep-size
  /usr/bin/python3 -c "
import sys, glob, os
from PIL import Image
for p in sorted(glob.glob('$t/lq/*.png')):
    Image.open(p).convert('RGB').save('.cache/tp_photos/' + os.path.basename(p)[:-4] + '.jpg', quality=95)
"
  rm -rf "$t"
fi
du -sh .cache/dlib_src .cache/lm68_? .cache/tp_photos
ls .cache/tp_photos/*.jpg | wc -l
