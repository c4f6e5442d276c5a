#!/usr/bin/env bash
# Degradation throughput on the GPU machine: bench_degrade (bench/bench_degrade.cpp) on CUDA, then
# the batched CPU path with 16 threads for comparison. Builds nothing: expects the lead's
# build-gpu/bin/bench_degrade (scripts/gpu-build.sh; Google Benchmark must be found at configure
# time). Runs from the repo root, writes under $OUT, finishes in about 1-2 minutes (< 4 min).
# Prints: the GPU name, then Google Benchmark's tables (one row per preset/JPEG mode/batch, with an
# images/s column); the same as JSON in $OUT/bench_degrade_{cuda,cpu16}.json.
set -euo pipefail
: "${OUT:?OUT must name the output folder}"
BIN=${BIN:-build-gpu/bin/bench_degrade}
if [ ! -x "$BIN" ]; then
  echo "bench_degrade.sh: $BIN not found: build it first (scripts/gpu-build.sh; needs Google Benchmark)" >&2
  exit 2
fi
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; } | tee "$OUT/bench_degrade_device.txt"
echo "== CUDA (F2S_BENCH_DEVICE=cuda) =="
F2S_BENCH_DEVICE=cuda timeout 150 "$BIN" --benchmark_out="$OUT/bench_degrade_cuda.json" --benchmark_out_format=json \
  | tee "$OUT/bench_degrade_cuda.txt"
echo "== CPU, 16 threads, batched path only =="
F2S_BENCH_DEVICE=cpu F2S_BENCH_THREADS=16 timeout 60 "$BIN" --benchmark_filter='batch8' \
  --benchmark_out="$OUT/bench_degrade_cpu16.json" --benchmark_out_format=json | tee "$OUT/bench_degrade_cpu16.txt" || \
  echo "(CPU comparison stopped at its 60 s limit)"
