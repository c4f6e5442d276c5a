#!/usr/bin/env bash
# Re-measure the CPU timing rows of docs/RESULTS.md that name only "2-core CPU" (2026-11-26/27, before
# the CPU model was recorded; issue #24), one command after the other, on this machine, and print
# the CPU model (lscpu: model name, family, model) so that the rows can be labelled with it.
#
#   bash scripts/remeasure_cpu_rows.sh > out/remeasure.log 2>&1
#
# Run it on an idle machine (nothing compiling beside it): every row prints the load average before
# it starts. Default run: an estimated 12-15 minutes on the idle 2-core machine (from the old
# rows' idle times; not yet run end to end; every row also has its own time limit).
# For each row it prints a label (with the RESULTS.md lines it re-measures), the command, the load
# average before, the command's own output and /usr/bin/time -v's wall, user, system and peak RSS
# of the whole process.
#
# Environment:
#   BIN=DIR            binaries (default: build/bin of this checkout)
#   F2S_DATA=DIR       the shared data (default: ../shared/data next to the repository; read-only)
#   FULL=1             run the two Real-ESRGAN quality commands exactly as in RESULTS.md (full
#                      reference: all three sets with x4plus; no-reference: the 20 photos with
#                      x4plus; an estimated 40 more minutes) instead of the reduced subsets below
#   X4PLUS_MODELS=DIR  a folder with the x4plus-backbone restorer (fadex.safetensors,
#                      scene_restorer.safetensors, scene_restorer_blind.safetensors from the sixth
#                      oracle experiment, .cache/gpu_x4 on the GPU machine). Not in this checkout:
#                      without it the x4plus restorer rows (RESULTS.md 559-560) are skipped. With it
#                      they add about 14 minutes.
#
# Reduced against the original commands (so that the default run fits the budget):
#   - Google Benchmark minimum times are smaller (bench_metrics 0.5 s instead of 1 s; the LPIPS-only
#     rerun 1 s instead of 4 s; bench_degrade's steps 0.5 s, its degrade_512 cases keep the 1 s
#     compiled into bench_degrade.cpp). The degradation throughput was 2 runs, here 1.
#   - Real-ESRGAN quality (RESULTS.md 167-206): x4fast and bicubic on all three sets, x4plus on Set14
#     only, and no --save (the saved PNGs cost only total wall, not the s/image column).
#   - Real-ESRGAN no-reference (RESULTS.md 208-240): x4fast and bicubic on the same 20 photos;
#     x4plus (105 s/image under load) only with FULL=1.
# Not covered: the clean-build row (RESULTS.md 290-292; the lead times it separately) and the
# ctest wall in the same row (the suite has grown from 81 to 200+ tests, so it is not the same
# measurement); upscayl-bin's own timings (from peers.md); rows that are not timings.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
BIN=${BIN:-$ROOT/build/bin}
DATA=${F2S_DATA:-$ROOT/../shared/data}
CACHE=${F2S_CACHE:-$HOME/.cache/face2scene}
F2S=$BIN/face2scene
FULL=${FULL:-0}
X4PLUS_MODELS=${X4PLUS_MODELS:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/remeasure_cpu.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
T_START=$(date +%s)

# ---------------------------------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------------------------------
echo "# scripts/remeasure_cpu_rows.sh, started $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo
echo "## Machine"
lscpu | grep 'Model name'
lscpu | grep -E '^CPU family:|^Model:|^Thread\(s\) per core:|^Core\(s\) per socket:|^Socket\(s\):|^CPU\(s\):|^Hypervisor vendor:'
CPU_NAME=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
CPU_FAM=$(lscpu | sed -n 's/^CPU family:[[:space:]]*//p' | head -1)
CPU_MOD=$(lscpu | sed -n 's/^Model:[[:space:]]*//p' | head -1)
echo "CPU flags of note: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|avx512_vnni|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "nproc: $(nproc); memory: $(free -h | awk '/^Mem:/ {print $2}'); kernel: $(uname -r)"
echo "label for RESULTS.md: $(nproc)-core ${CPU_NAME} family ${CPU_FAM} model ${CPU_MOD}"
echo "checkout: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (working tree has local changes)')"
echo "binaries: $BIN (face2scene built $(date -u -r "$F2S" '+%Y-%m-%d %H:%M UTC' 2>/dev/null || echo '?'))"
echo "data: $DATA"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{exit !($1 > 1.0)}' /proc/loadavg; then
  echo "WARNING: load average above 1 at the start: the machine is not idle, timings will be inflated"
fi

# ---------------------------------------------------------------------------------------------------
# Preflight
# ---------------------------------------------------------------------------------------------------
missing=0
for b in face2scene bench_metrics bench_degrade bench_upscale bench_oracle; do
  [[ -x $BIN/$b ]] || { echo "MISSING binary: $BIN/$b"; missing=1; }
done
for f in "$DATA/scenes/solvay1927.jpg" "$DATA/natural/Kodak24/kodim15.png" "$DATA/faces/lfw/pairs.txt" \
  "$DATA/weights/lpips_v0.1" "$DATA/scenes/real_degraded" \
  "$CACHE/weights/realesr-general-x4v3.safetensors" "$CACHE/weights/realesrgan-x4plus.safetensors" \
  "$CACHE/weights/faceapi_face_recognition.safetensors" \
  weights/fadex.safetensors weights/scene_restorer.safetensors weights/scene_restorer_blind.safetensors; do
  [[ -e $f ]] || { echo "MISSING input: $f"; missing=1; }
done
[[ -x /usr/bin/time ]] || { echo "MISSING /usr/bin/time (apt-get install time)"; missing=1; }
if [[ $missing != 0 ]]; then
  echo "stopping: see the MISSING lines above"
  exit 1
fi
echo
"$F2S" info 2>&1 | sed 's/^/  /'

# ---------------------------------------------------------------------------------------------------
# One row: label, command, load average before, the command's output, then /usr/bin/time -v.
# ---------------------------------------------------------------------------------------------------
ROW=0
row() {  # row LABEL LIMIT_S COMMAND...
  local label=$1 limit=$2
  shift 2
  ROW=$((ROW + 1))
  echo
  echo "=== row $ROW: $label"
  echo "start: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: $*"
  echo "--- output:"
  /usr/bin/time -v -o "$WORK/time.txt" timeout "$limit" "$@"
  local rc=$?
  echo "--- /usr/bin/time -v, whole process:"
  grep -E 'Elapsed \(wall clock\)|User time|System time|Percent of CPU|Maximum resident set size' "$WORK/time.txt" |
    sed 's/^[[:space:]]*/  /'
  if [[ $rc == 124 ]]; then
    echo "exit status: 124 (stopped by the script's ${limit} s limit)"
  else
    echo "exit status: $rc"
  fi
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}
skip() {  # skip LABEL REASON
  ROW=$((ROW + 1))
  echo
  echo "=== row $ROW: $1"
  echo "SKIPPED: $2"
}

# ---------------------------------------------------------------------------------------------------
# Metrics speed (RESULTS.md 12-34)
# ---------------------------------------------------------------------------------------------------
row "metrics speed, bench_metrics (RESULTS.md 14-26 table, 32-34 idle rerun; was build-metrics|build-lead/bin/bench_metrics --benchmark_min_time=1)" 300 \
  "$BIN/bench_metrics" --benchmark_min_time=0.5
row "metrics speed, LPIPS 512² alone (RESULTS.md 28-30; was --benchmark_filter=Lpips --benchmark_min_time=4)" 120 \
  "$BIN/bench_metrics" --benchmark_filter=Lpips --benchmark_min_time=1

# ---------------------------------------------------------------------------------------------------
# Degradation throughput (RESULTS.md 53-87): 2-core "AMD EPYC 2.1 GHz", no family/model
# ---------------------------------------------------------------------------------------------------
row "degradation throughput, bench_degrade on 2 torch threads (RESULTS.md 60-84: images/s per preset and the single steps; was F2S_BENCH_THREADS=2 build-degrade/bin/bench_degrade, two runs)" 600 \
  env F2S_BENCH_THREADS=2 "$BIN/bench_degrade" --benchmark_min_time=0.5

# ---------------------------------------------------------------------------------------------------
# Faces: detection time (RESULTS.md 104, 110-111). solvay1927.jpg is ../shared/data/scenes/solvay1927.jpg
# (2000x1333, as the row says). The CLI prints "(W x H, S s)" per photo: the detector's own time.
# ---------------------------------------------------------------------------------------------------
for mf in 80 40 24; do
  row "face detection, Solvay 1927 2000x1333, --min-face $mf (RESULTS.md 110-111: 1.0 / 2.5 / 4.2 s for 80 / 40 / 24)" 120 \
    "$F2S" -q faces "$DATA/scenes/solvay1927.jpg" --min-face "$mf"
done

# ---------------------------------------------------------------------------------------------------
# Identity: LFW embedding speed (RESULTS.md 122, 134, 137-138: 1528 faces in 103 s, default crop).
# The CLI prints "N images embedded in S s"; /usr/bin/time gives the whole process.
# ---------------------------------------------------------------------------------------------------
row "identity descriptor, LFW default crop, --threads 2 (RESULTS.md 122, 134, 137-138: 1528 faces in 103 s)" 600 \
  "$F2S" --threads 2 identity-lfw --lfw "$DATA/faces/lfw"

# ---------------------------------------------------------------------------------------------------
# Real-ESRGAN CLI speed and peak memory on kodim15 at 256x171 (RESULTS.md 294-303 idle rerun, "2-core
# CPU"; the same commands as the loaded Intel Xeon rows 141-149 and 242-249, whose whole-image
# column is re-measured too). The old /tmp input k15.png is made again as the row says:
# convert kodim15.png -filter Catrom -resize 256x171! k15.png (ImageMagick).
# ---------------------------------------------------------------------------------------------------
CONVERT=/usr/bin/convert
[[ -x $CONVERT ]] || CONVERT=convert
K15=$WORK/k15.png
echo
echo "making the input: $CONVERT $DATA/natural/Kodak24/kodim15.png -filter Catrom -resize '256x171!' $K15"
if "$CONVERT" "$DATA/natural/Kodak24/kodim15.png" -filter Catrom -resize '256x171!' "$K15" && [[ -s $K15 ]]; then
  for m in general-x4v3 x4plus; do
    row "Real-ESRGAN upscale $m, 256x171 -> x4, auto tiling, 2 threads (RESULTS.md 296-303: general-x4v3 2.02 s / 253 MB, x4plus 12.70 s / 797 MB)" 300 \
      "$F2S" -q upscale "$K15" -o "$WORK/k15_${m}_auto.png" --model "$m"
  done
  for m in general-x4v3 x4plus; do
    row "Real-ESRGAN upscale $m, 256x171 -> x4, whole image --tile 0 (RESULTS.md 148-149 'ours, whole image', loaded Intel Xeon: general-x4v3 3.0 s / 241 MB, x4plus 63.6 s / 1048 MB)" 300 \
      "$F2S" -q upscale "$K15" -o "$WORK/k15_${m}_whole.png" --model "$m" --tile 0
  done
else
  skip "Real-ESRGAN upscale rows (RESULTS.md 148-149, 296-303)" "could not make k15.png with ImageMagick"
fi

# ---------------------------------------------------------------------------------------------------
# Real-ESRGAN quality s/image (RESULTS.md 167-206) and no-reference s/image (RESULTS.md 208-240).
# ---------------------------------------------------------------------------------------------------
if [[ $FULL == 1 ]]; then
  row "Real-ESRGAN quality, full reference, the original command (RESULTS.md 167-206: 2873 s wall, 1.04 GB peak; s/image column)" 3600 \
    "$BIN/bench_upscale" --quality --models x4fast,x4plus --sets Set14,Kodak24,BSD100 --threads 2 --save "$WORK/esr_q"
  row "Real-ESRGAN no-reference, the original command (RESULTS.md 208-240: 2351 s wall, 1.58 GB peak; x4plus 2109 s, x4fast 80 s for 20 photos)" 3600 \
    "$BIN/bench_upscale" --noref "$DATA/scenes/real_degraded" --models x4fast,x4plus --limit 20 --threads 2 --save "$WORK/esr_nr"
else
  row "Real-ESRGAN quality, bicubic and x4fast, all three sets, no --save (RESULTS.md 167-206, table 181-191, s/image column; reduced: the original ran x4plus too and saved PNGs)" 900 \
    "$BIN/bench_upscale" --quality --models x4fast --sets Set14,Kodak24,BSD100 --threads 2
  row "Real-ESRGAN quality, bicubic and x4plus, Set14 only, no --save (RESULTS.md 185 Set14 x4plus s/image 26.1 loaded; reduced: Kodak24/BSD100 x4plus only with FULL=1)" 900 \
    "$BIN/bench_upscale" --quality --models x4plus --sets Set14 --threads 2
  row "Real-ESRGAN no-reference, the same 20 photos, input/bicubic/x4fast (RESULTS.md 208-240, table 222-227: x4fast 4.02 s/image, 80 s in all; reduced: x4plus only with FULL=1)" 900 \
    "$BIN/bench_upscale" --noref "$DATA/scenes/real_degraded" --models x4fast --limit 20 --threads 2
fi

# ---------------------------------------------------------------------------------------------------
# Oracle core: one x4 step of the conditioned restorer, 256² -> 1 MP and 512² -> 4 MP, warm-up + 2
# timed runs each (the program's fixed CPU count), peak RSS of the whole run.
# ---------------------------------------------------------------------------------------------------
if [[ -n $X4PLUS_MODELS ]]; then
  if [[ -f $X4PLUS_MODELS/scene_restorer.safetensors && -f $X4PLUS_MODELS/fadex.safetensors ]]; then
    row "oracle restorer speed, x4plus backbone, untiled (RESULTS.md 559: 17.8 s / 123 s, 6.16 GB)" 900 \
      "$BIN/bench_oracle" --speed --models "$X4PLUS_MODELS"
    row "oracle restorer speed, x4plus backbone, --tile 256 (RESULTS.md 560: 23.4 s / 109 s, 1.90 GB)" 900 \
      "$BIN/bench_oracle" --speed --models "$X4PLUS_MODELS" --tile 256
  else
    skip "oracle restorer speed, x4plus backbone (RESULTS.md 559-560)" \
      "X4PLUS_MODELS=$X4PLUS_MODELS lacks scene_restorer.safetensors or fadex.safetensors"
  fi
else
  skip "oracle restorer speed, x4plus backbone, untiled and --tile 256 (RESULTS.md 559-560)" \
    "the x4plus-backbone restorer (sixth experiment, .cache/gpu_x4 on the GPU machine) is not shipped nor in this checkout; set X4PLUS_MODELS=DIR to run it"
fi
row "oracle restorer speed, shipped general-x4v3 restorer (weights/), untiled (RESULTS.md 606-610: 2.38 s / 17.0 s, peak RSS 752 MB)" 600 \
  "$BIN/bench_oracle" --speed

# ---------------------------------------------------------------------------------------------------
echo
echo "## Done $(date -u '+%Y-%m-%d %H:%M:%S UTC'): $ROW rows in $(( $(date +%s) - T_START )) s"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "label for RESULTS.md: $(nproc)-core ${CPU_NAME} family ${CPU_FAM} model ${CPU_MOD}"
