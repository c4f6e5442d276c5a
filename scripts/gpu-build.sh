#!/usr/bin/env bash
# Configure and build face2scene on the GPU machine (Ubuntu 24.04, PyTorch-bundled LibTorch 2.x + CUDA).
# Header-only / small deps it lacks (CLI11, GoogleTest, Google Benchmark) travel unpacked from Debian
# packages in .deps/ (made by scripts/fetch-gpu-deps.sh here; carry it with the device tool).
# Usage: [TARGETS="face2scene ..."] scripts/gpu-build.sh [build-dir]     (default build-gpu, all targets)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
torch_prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
jobs=$(nproc)
start=$(date +%s)
cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$PWD/.deps/usr" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DTORCH_CUDA_ARCH_LIST=9.0 -DF2S_WITH_DLIB=OFF >"$build.configure.log" 2>&1 \
  || { tail -40 "$build.configure.log"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$build" -j"$jobs" ${TARGETS:+--target $TARGETS} 2>&1 | tail -n 25
echo "gpu-build: configured+built in $(( $(date +%s) - start )) s with $jobs jobs"
"$build/bin/face2scene" info
