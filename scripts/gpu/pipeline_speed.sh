#!/usr/bin/env bash
# Issue #19's GPU speed on the device machine: `face2scene restore` over a folder of 100 people photos,
# 512² → 2048², faces included (dlib's HOG + 68 landmarks on --detect-threads background threads,
# Ref-FR, FaDeX, the scene restorer, the paste, I/O), with per-stage timings from the JSON report.
# What it needs comes in pieces (scripts/gpu/stage_pipeline_speed.sh, run here first, lists the five
# warm calls and their carry). Each call does what its pieces allow and names what is still missing:
# dlib is built from .cache/dlib_src once (static, no BLAS/LAPACK/GUI/codecs: HOG and the shape
# predictor need none), face2scene with it; the model is joined once all five parts have come.
# Images/s = (100 − 1) / (time for 100 − time for 1): model loading and the first image's CUDA warm-up
# are left out. Before the runs: the CUDA face tests (hog-torch on the GPU = on the CPU = dlib) and
# both detectors on the first 20 photos (`faces`: faces found, boxes matched, seconds a photo).
# Each configuration of CONFIGS ("label|restore flags" per line; default: the defaults, two
# workers on the GPU; session 14 also ran "--devices 0,0 --detector hog") is measured; then a profiled run of NP photos (default
# 10) with PROFILE_ARGS (default: two workers): kernel time by stage (kernel_time.py).
# Env: OUT (required), N (photos, default 100), NP, ARGS (extra restore flags for every run), CONFIGS.
set -uo pipefail
: "${OUT:?OUT must name the output folder}"
cd "$(dirname "$0")/../.."
DP=$PWD/.cache/dlib_prefix
if [ ! -f "$DP/lib/cmake/dlib/dlibConfig.cmake" ]; then
  [ -s .cache/dlib_src/dlib_src.tar.xz ] || { echo "missing .cache/dlib_src (carry it)"; exit 1; }
  rm -rf /tmp/dlib_src /tmp/dlib_build && mkdir -p /tmp/dlib_src
  python3 -c 'import lzma,tarfile,sys; tarfile.open(fileobj=lzma.open(sys.argv[1])).extractall(sys.argv[2])' \
    .cache/dlib_src/dlib_src.tar.xz /tmp/dlib_src
  src=$(ls -d /tmp/dlib_src/dlib-*/dlib)
  t0=$(date +%s)
  cmake -G Ninja -S "$src" -B /tmp/dlib_build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$DP" \
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DDLIB_NO_GUI_SUPPORT=ON -DDLIB_USE_BLAS=OFF \
    -DDLIB_USE_LAPACK=OFF -DDLIB_USE_CUDA=OFF -DDLIB_PNG_SUPPORT=OFF -DDLIB_JPEG_SUPPORT=OFF -DDLIB_GIF_SUPPORT=OFF \
    -DDLIB_WEBP_SUPPORT=OFF -DDLIB_JXL_SUPPORT=OFF -DDLIB_LINK_WITH_SQLITE3=OFF -DDLIB_USE_FFTW=OFF \
    -DDLIB_USE_MKL_FFT=OFF -DCMAKE_POLICY_VERSION_MINIMUM=3.5 >/tmp/dlib_configure.log 2>&1 || { tail -20 /tmp/dlib_configure.log; exit 1; }
  cmake --build /tmp/dlib_build -j"$(nproc)" 2>&1 | tail -2 && cmake --install /tmp/dlib_build >/dev/null
  echo "dlib built in $(( $(date +%s) - t0 )) s"
fi
F2S_DLIB_PREFIX="$DP" TARGETS="face2scene test_cuda_faces test_cuda_models" bash scripts/gpu-build.sh build-gpu 2>&1 | tail -4
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
M=.cache/lm68/shape_predictor_68_face_landmarks.dat
if [ ! -f "$M" ]; then
  missing=""
  for p in a b c d e; do [ -s .cache/lm68_$p/part ] || missing="$missing .cache/lm68_$p"; done
  [ -z "$missing" ] || { echo "still to carry:$missing"; exit 0; }
  mkdir -p .cache/lm68
  cat .cache/lm68_{a,b,c,d,e}/part |
    python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.decompress(sys.stdin.buffer.read()))' >"$M"
  (cd .cache/lm68 && sha256sum -c ../lm68_e/sha256) || { rm -f "$M"; echo "landmark model parts do not join"; exit 1; }
fi
export F2S_FACE_MODELS=$PWD/.cache/lm68
# The scene restorer's base network (scripts/install_models.sh here; no registry there).
GW=$HOME/.cache/face2scene/weights
if [ ! -s "$GW/realesr-general-x4v3.safetensors" ]; then
  [ -s .cache/gx4v3/realesr-general-x4v3.safetensors ] || { echo "still to carry: .cache/gx4v3"; exit 0; }
  mkdir -p "$GW" && cp .cache/gx4v3/realesr-general-x4v3.safetensors "$GW/"
fi
# The SSD face detector (face-api's, converted here by stage_pipeline_speed.sh, fp16, 11 MB): with
# it the second look runs the SSD beside HOG, as `restore` does where install_faceapi.sh ran.
if [ -s .cache/ssd_w/faceapi_ssd_mobilenetv1.safetensors ] && [ ! -s "$GW/faceapi_ssd_mobilenetv1.safetensors" ]; then
  cp .cache/ssd_w/faceapi_ssd_mobilenetv1.safetensors "$GW/"
fi
[ -s "$GW/faceapi_ssd_mobilenetv1.safetensors" ] || echo "no SSD weights (carry .cache/ssd_w): HOG only"
N=${N:-100}
P=.cache/tp_photos
[ "$(ls $P/*.jpg 2>/dev/null | wc -l)" -ge "$N" ] || { echo "still to carry: $P"; exit 0; }
rm -rf /tmp/tp_in1 /tmp/tp_inN /tmp/tp_o1 /tmp/tp_oN && mkdir -p /tmp/tp_in1 /tmp/tp_inN
ls $P/*.jpg | head -1 | xargs -I{} cp {} /tmp/tp_in1/
ls $P/*.jpg | head -"$N" | xargs -I{} cp {} /tmp/tp_inN/
F=build-gpu/bin/face2scene
for t in test_cuda_faces test_cuda_models; do
  build-gpu/tests/$t 2>&1 | grep -E "^\[ +(OK|FAILED|SKIPPED) +\]|PASSED|Failure|faces"
done | tee "$OUT/cuda_tests.txt"
# The two detectors on the same ND (default 20) photos: dlib's HOG (CPU, one thread) and hog-torch (CUDA).
rm -rf /tmp/tp_in20 && mkdir -p /tmp/tp_in20 && ls $P/*.jpg | head -"${ND:-20}" | xargs -I{} cp {} /tmp/tp_in20/
"$F" -q faces /tmp/tp_in20 --min-face 12 --detector hog --json /tmp/det_hog.json >/dev/null 2>&1
"$F" -q faces /tmp/tp_in20 --min-face 12 --detector hog-torch --device cuda --json /tmp/det_torch.json >/dev/null 2>&1
python3 - /tmp/det_hog.json /tmp/det_torch.json <<'PY' | tee "$OUT/detector_agreement.txt"
import json, sys
def load(p):
    return {i["image"]: i for i in json.load(open(p))["images"]}
a, b = load(sys.argv[1]), load(sys.argv[2])
def iou(p, q):
    ix = max(0, min(p[2], q[2]) - max(p[0], q[0])); iy = max(0, min(p[3], q[3]) - max(p[1], q[1]))
    u = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - ix * iy
    return ix * iy / u if u > 0 else 0
na = sum(len(i["faces"]) for i in a.values()); nb = sum(len(i["faces"]) for i in b.values())
matched, dscore = 0, []
for k, i in a.items():
    for f in i["faces"]:
        best = max(b.get(k, {"faces": []})["faces"], key=lambda g: iou(f["box"], g["box"]), default=None)
        if best and iou(f["box"], best["box"]) > 0.9:
            matched += 1; dscore.append(abs(f["score"] - best["score"]))
ta = [i["detect_seconds"] for i in a.values()][1:]; tb = [i["detect_seconds"] for i in b.values()][1:]
print(f"detectors on {len(a)} photos (--min-face 12): dlib hog {na} faces, hog-torch (cuda) {nb}; {matched} of dlib's matched at IoU > 0.9, max |score diff| {max(dscore, default=0):.3f}")
print(f"  seconds a photo (detection + landmarks, photos 2-{len(a)}): dlib hog {sum(ta)/len(ta):.3f}, hog-torch cuda {sum(tb)/len(tb):.3f}")
PY
run() {  # $1 = input folder, $2 = output folder, $3 = flags; prints seconds
  local t0 t1
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$F" -q restore "$1" -o "$2" --device cuda --report "$2.json" ${ARGS:-} $3 >"$2.log" 2>&1 || { tail -5 "$2.log" >&2; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.2f}')"
}
"$F" -q restore /tmp/tp_in1 -o /tmp/tp_warm --device cuda ${ARGS:-} >/dev/null 2>&1  # caches, kernels' first load
CONFIGS=${CONFIGS:-"defaults (hog-torch, 2 workers on CUDA)|
two workers on the GPU|--devices 0,0"}
: >"$OUT/pipeline_speed.txt"
best_per=""
while IFS='|' read -r label flags; do
  [ -n "$label" ] || continue
  rm -rf /tmp/tp_o1 /tmp/tp_oN
  t1=$(run /tmp/tp_in1 /tmp/tp_o1 "$flags")
  tn=$(run /tmp/tp_inN /tmp/tp_oN "$flags")
  python3 - "$t1" "$tn" "$N" /tmp/tp_oN.json "$label" "$flags" <<'PY' | tee -a "$OUT/pipeline_speed.txt"
import json, sys, statistics as st
t1, tn, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
rep = json.load(open(sys.argv[4]))
ims = rep["images"]
print(f"== {sys.argv[5]} ({sys.argv[6] or 'no extra flags'})")
print(f"run of 1 photo: {t1:.2f} s; run of {n}: {tn:.2f} s; images/s (n-1)/(T{n}-T1) = {(n - 1) / (tn - t1):.2f}")
print(f"images done: {len(ims)}, failures: {len(rep['failures'])}, faces detected: {sum(i['faces_detected'] for i in ims)}, restored: {sum(i['faces_restored'] for i in ims)}")
keys = list(ims[0]["timings_s"].keys())
for k in keys:
    v = [i["timings_s"][k] for i in ims[1:]]
    print(f"  {k:10s} mean {st.mean(v) * 1000:8.1f} ms  median {st.median(v) * 1000:8.1f} ms")
PY
  cp /tmp/tp_oN.json "$OUT/pipeline_speed_report_$(echo "$label" | tr -c 'a-z0-9' '_' | cut -c1-20).json"
  per=$(python3 -c "print(($tn - $t1) / ($N - 1))")
  [ -n "$best_per" ] || best_per=$per
  [ "$flags" = "${PROFILE_ARGS:---devices 0,0}" ] && best_per=$per
done <<<"$CONFIGS"
# Kernel time: a profiled run of NP photos (Kineto trace, kernels tied to stages), against the wall
# time per photo of the unprofiled run with the same flags.
NP=${NP:-10}
rm -rf /tmp/tp_inP && mkdir -p /tmp/tp_inP && ls $P/*.jpg | head -"$NP" | xargs -I{} cp {} /tmp/tp_inP/
# shellcheck disable=SC2086
"$F" -q restore /tmp/tp_inP -o /tmp/tp_oP --device cuda --profile-trace /tmp/trace.json ${ARGS:-} ${PROFILE_ARGS:---devices 0,0} \
  >/tmp/tp_oP.log 2>&1 || tail -5 /tmp/tp_oP.log
echo "== profiled: ${PROFILE_ARGS:---devices 0,0}" | tee -a "$OUT/pipeline_speed.txt"
python3 scripts/gpu/kernel_time.py /tmp/trace.json "$NP" "$best_per" | tee -a "$OUT/pipeline_speed.txt"
python3 -c 'import gzip,shutil,sys; shutil.copyfileobj(open(sys.argv[1],"rb"), gzip.open(sys.argv[2],"wb"))' \
  /tmp/trace.json "$OUT/trace.json.gz"
ls /tmp/tp_oN | head -3
