#!/usr/bin/env bash
# Configure and build face2scene on the GPU machine (Ubuntu 24.04, PyTorch-bundled LibTorch 2.x + CUDA).
# Header-only / small deps it lacks (CLI11, GoogleTest, Google Benchmark) travel unpacked from Debian
# packages in .deps/ (made by scripts/fetch-gpu-deps.sh here; carry it with the device tool).
# Usage: [TARGETS="face2scene ..."] [F2S_DLIB_PREFIX=DIR] scripts/gpu-build.sh [build-dir]   (default build-gpu, all targets)
# F2S_DLIB_PREFIX: a dlib installed there (scripts/gpu/pipeline_speed.sh builds one from carried sources):
# face detection and landmarks are then compiled in; without it the build has none (tests skip).
# Default: .cache/dlib_prefix when a dlib is installed there.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
torch_prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
jobs=$(nproc)
start=$(date +%s)
prefix="$torch_prefix;$PWD/.deps/usr"
dlib=(-DF2S_WITH_DLIB=OFF)
# A dlib that pipeline_speed.sh built earlier on this (warm) machine is kept, so that a later call's
# build (training, benchmarks) does not reconfigure without it and rebuild everything.
if [ -z "${F2S_DLIB_PREFIX:-}" ] && [ -f .cache/dlib_prefix/lib/cmake/dlib/dlibConfig.cmake ]; then
  F2S_DLIB_PREFIX=$PWD/.cache/dlib_prefix
fi
if [ -n "${F2S_DLIB_PREFIX:-}" ]; then
  prefix="$prefix;$F2S_DLIB_PREFIX"
  dlib=(-DF2S_WITH_DLIB=ON -Ddlib_DIR="$F2S_DLIB_PREFIX/lib/cmake/dlib")
fi
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0 "${dlib[@]}" >"$build.configure.log" 2>&1 \
  || { tail -40 "$build.configure.log"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$build" -j"$jobs" ${TARGETS:+--target $TARGETS} 2>&1 | tail -n 25
echo "gpu-build: configured+built in $(( $(date +%s) - start )) s with $jobs jobs"
"$build/bin/face2scene" info
