#!/usr/bin/env bash
# Regenerates tests/fixtures/identity/faceapi_reference.json: the 128-D descriptors that
# @vladmandic/face-api's own FaceRecognitionNet (TF.js, pure-JS 'cpu' backend) gives for a few
# faces of ../shared/data/faces. The crops (150x150, 8-bit) are made by face2scene and written
# as PPM, so TF.js and LibTorch see the very same pixels; test_identity.cpp recomputes them.
#
# Needs: scripts/install_faceapi.sh --with-reference, a built CLI.
# Usage: scripts/make_identity_fixtures.sh [PATH/TO/face2scene]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="${1:-$repo_root/build/bin/face2scene}"
data="${F2S_DATA:-$repo_root/../shared/data}"
out="$repo_root/tests/fixtures/identity/faceapi_reference.json"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# FFHQ-aligned 512x512 faces (PNG, so no JPEG decoder differences) and one CelebA-HQ JPEG.
ffhq=(faces/other/clean/gfpgan_ffhq_00000000.png faces/other/degraded/gfpgan_Adele_crop.png
      faces/other/degraded/gfpgan_Julia_Roberts_crop.png faces/other/degraded/gfpgan_Justin_Timberlake_crop.png
      faces/other/degraded/codeformer_0143.png faces/other/clean/celebahq_female_039913.jpg)
# Deep-funneled LFW 250x250, centre crop 150: two photos of one person and one of another.
lfw=(faces/lfw/Abdullah_Gul/Abdullah_Gul_0001.jpg faces/lfw/Abdullah_Gul/Abdullah_Gul_0006.jpg
     faces/lfw/Adam_Sandler/Adam_Sandler_0001.jpg)

"$cli" --quiet identity --crop ffhq --save-crops "$tmp/crops" "${ffhq[@]/#/$data/}"
"$cli" --quiet identity --crop lfw --lfw-crop 150 --lfw-shift 0 --save-crops "$tmp/crops" "${lfw[@]/#/$data/}"
node "$repo_root/scripts/faceapi_reference.js" "$tmp/ref.json" "$tmp"/crops/*.ppm >/dev/null

mkdir -p "$(dirname "$out")"
FFHQ="${ffhq[*]}" LFW="${lfw[*]}" REF="$tmp/ref.json" OUT="$out" node -e '
const fs = require("fs"), path = require("path");
const ref = JSON.parse(fs.readFileSync(process.env.REF));
const faces = [];
for (const [mode, list] of [["ffhq", process.env.FFHQ], ["lfw", process.env.LFW]]) {
  for (const file of list.split(" ")) {
    const stem = path.basename(file, path.extname(file));
    faces.push({ file, crop: mode, lfw_crop: 150, input_sum: ref.input_sums[stem],
                 descriptor: ref.descriptors[stem].map((v) => +v.toFixed(7)) });
  }
}
const doc = { generated_by: "scripts/make_identity_fixtures.sh", reference: "@vladmandic/face-api " + ref.faceapi +
  " FaceRecognitionNet.computeFaceDescriptor, @tensorflow/tfjs " + ref.tfjs + ", backend " + ref.backend,
  faces };
fs.writeFileSync(process.env.OUT, JSON.stringify(doc) + "\n");
console.log("wrote " + faces.length + " reference descriptors to " + process.env.OUT);
'
