#!/usr/bin/env bash
# The InScene-style benchmark (bench_inscene, issue #20) on the GPU machine, which has no shared data
# and no dlib. Made here first (CPU, dlib; ~1-2 s per case and condition for the face detections):
#   build/bin/bench_inscene --pack .cache/inscene_pack --conds moderate4,severe4,moderate1 \
#       [--methods ...]        # ground truths, references, real photos, detections, weights
# Then, on the device tool: OUT=... bash scripts/gpu/bench_inscene.sh
# Carry: .deps and .cache/inscene_pack. The run writes to out/inscene_gpu (an ignored folder, kept
# between calls while the machine stays warm, so a second call resumes) and stops itself after
# RUN_S seconds (default 500, under the 10-minute call limit); every call then rebuilds the report
# (--report-only) and copies per_image.csv, docs/BENCHMARKS.md, commands.txt and grids.tar (the
# grids and docs/images/inscene_people_hq.png) to $OUT. Repeat the call until it prints "bench_inscene: N/N ... done".
# upscayl-bin rows: METHODS=upscayl-x4plus,upscayl-x4fast E=.cache/esr_gpu_small with .gl carried
# (the Vulkan loader .debs, as scripts/gpu/realesrgan_speed.sh; E holds upscayl-bin(.gz) and models/).
# Env: SETS (default celeba,lfw,people_hq,real), METHODS (default all but upscayl), CONDS (default
# moderate4,severe4,moderate1; must be conditions the pack was made with), LIMIT (images per set,
# default 0 = all), MODELS (default weights), RUN_S.
set -uo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
TARGETS="bench_inscene" bash scripts/gpu-build.sh build-gpu | tail -3
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
PACK=.cache/inscene_pack
# The pack with its weights is larger than one call may carry beside the tree (64 MiB): x4plus may
# travel in two halves over two warm calls (.cache/x4p_a/part, .cache/x4p_b/part and x4p.sha, made
# with `split -b` and sha256sum here); joined and checked here once both have come.
XW="$PACK/weights/realesrgan-x4plus.safetensors"
if [ ! -f "$XW" ] && [ -f .cache/x4p_a/part ] && [ -f .cache/x4p_b/part ]; then
  cat .cache/x4p_a/part .cache/x4p_b/part >"$XW"
  sha256sum -c .cache/x4p_b/x4p.sha || { rm -f "$XW"; echo "x4plus halves do not join to the packed file"; exit 1; }
fi
# upscayl-bin and the metric weights staged over warm calls by scripts/gpu/stage_upscayl.sh (its header
# lists the calls): joined here as far as they have come.
if [ -d .cache/ubx ]; then
  E=.cache/esr_gpu_small
  mkdir -p "$E/models"
  [ -s "$E/upscayl-bin" ] || python3 -c 'import lzma,sys; open(sys.argv[2],"wb").write(lzma.open(sys.argv[1]).read())' .cache/ubx/upscayl-bin.xz "$E/upscayl-bin"
  cp .cache/ubx/realesrgan-x4fast.* "$E/models/"
  if [ ! -f "$E/models/realesrgan-x4plus.bin" ] && [ -f .cache/ub1/x4plus.bin.part ] && [ -f .cache/ub2/x4plus.bin.part ]; then
    cat .cache/ub1/x4plus.bin.part .cache/ub2/x4plus.bin.part >"$E/models/realesrgan-x4plus.bin"
    cp .cache/ub1/realesrgan-x4plus.param "$E/models/"
    (cd "$E/models" && sha256sum -c ../../ub2/x4plus.bin.sha) || { rm -f "$E/models/realesrgan-x4plus.bin"; echo "x4plus.bin halves do not join"; exit 1; }
  fi
  ls "$E/models"
fi
if [ -d .cache/ubw ] && [ ! -f "$PACK/weights/lpips_squeeze.safetensors" ]; then
  mkdir -p "$PACK/weights" && cp -r .cache/ubw/. "$PACK/weights/"
fi
export F2S_WEIGHTS_DIR="$PWD/$PACK/weights"  # Real-ESRGAN bases (general-x4v3 under our restorer, x4plus) from the pack
UB_ARGS=()
if [ -n "${E:-}" ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  UB="$E/upscayl-bin"
  if [ ! -f "$UB" ] && [ -f "$UB.gz" ]; then gunzip -c "$UB.gz" >/tmp/upscayl-bin; UB=/tmp/upscayl-bin; fi
  chmod +x "$UB"
  UB_ARGS=(--upscayl-bin "$UB" --upscayl-models "$E/models")
fi
# SMOKE=1: only check that upscayl-bin runs through the NVIDIA Vulkan driver (one LFW photo, x4fast).
if [ -n "${SMOKE:-}" ]; then
  "${UB_ARGS[1]}" -i "$PACK/lfw/Abdullah/gt.jpg" -o "$OUT/smoke_x4fast.png" -n realesrgan-x4fast -m "${UB_ARGS[3]}" -s 4 -f png 2>&1 | tail -3
  ls -la "$OUT"
  exit 0
fi
R=out/inscene_gpu
mkdir -p "$R" docs/images
ARGS=(--data "$PACK" --device cuda --models "${MODELS:-weights}" --sets "${SETS:-celeba,lfw,people_hq,real}"
  --methods "${METHODS:-bicubic,esrgan-x4plus,esrgan-x4v3,faces-only,ours-blind,ours-norefs,ours-refs}"
  --conds "${CONDS:-moderate4,severe4,moderate1}" --limit "${LIMIT:-0}" -o "$R" --md docs/BENCHMARKS.md --docs-images docs/images --note docs/benchmarks_note.md)
timeout "${RUN_S:-500}" build-gpu/bin/bench_inscene "${ARGS[@]}" "${UB_ARGS[@]}" 2>&1 | grep -v "^frame" | tail -6
build-gpu/bin/bench_inscene "${ARGS[@]}" --report-only 2>&1 | tail -2
mkdir -p "$OUT/inscene"
# At most 8 files come back: the grids (one per set and condition) travel as one tar.
cp "$R/per_image.csv" "$R/commands.txt" "$OUT/inscene/" 2>/dev/null
cp docs/BENCHMARKS.md "$OUT/inscene/BENCHMARKS.docs.md"
cp docs/images/inscene_people_hq.png "$R/grids/" 2>/dev/null
tar -C "$R" -cf "$OUT/inscene/grids.tar" grids 2>/dev/null
# What a report merged with rows made on another machine needs (bench_inscene --report-only there
# after untarring into its -o folder): every KID feature file and grid box, and the outputs of the
# cases the grids show (the first 4 of each set, and people_hq's freely licensed photos).
( cd "$R" && find outputs \( -name '*.kid.pt' -o -name '*.box' \) | tar -cf "$OUT/inscene/kid.tar" -T - )
awk -F'\t' '!/^#/ && n[$1]++ < 4 {print $1" "$2}' "$PACK/manifest.tsv" >/tmp/grid_cases
for c in kodak_kodim12 flickr_multihmr_51960182045 commons_044_us-navy-sailor-patient pexels_women-on-phones pexels_ibm_dog-human; do
  echo "people_hq $c" >>/tmp/grid_cases
done
( cd "$R" && while read -r set name; do ls outputs/"$set"/*/*/"$name".png 2>/dev/null; done </tmp/grid_cases |
  tar -cf "$OUT/inscene/grid_outputs.tar" -T - )
ls -la "$OUT/inscene"
wc -l "$R/per_image.csv"
