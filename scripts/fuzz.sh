#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan; CMake option F2S_FUZZ=ON in build-fuzz/) and
# runs each for N executions, one at a time, at the lowest CPU priority. Needs Debian's clang and
# libclang-rt-14-dev (apt-get install -y clang libclang-rt-14-dev); the unit suite does not.
# Usage: scripts/fuzz.sh [--runs N] [--build DIR] [--no-build] [--max-time S] [TARGET...]
#   targets: png jpeg safetensors ncnn (default all). Exit 77 (skip) with --no-build when the
#   fuzz build is absent, 1 when a target crashed; the crash input is left in DIR/artifacts/.
# A run's new inputs go to DIR/corpus/<target>/ (the committed seeds in tests/fuzz/corpus/<target>/
# are read, never written). Each run prints "fuzz <target>: N runs in S s".
set -euo pipefail
cd "$(dirname "$0")/.."
runs=1000000 build=build-fuzz do_build=1 max_time=0 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --max-time) max_time=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(png jpeg safetensors ncnn)

if [ "$do_build" = 1 ]; then
  if [ ! -f "$build/CMakeCache.txt" ]; then
    CC=${CC:-clang} CXX=${CXX:-clang++} cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DF2S_FUZZ=ON >"$build.configure.log" 2>&1 || { tail -30 "$build.configure.log"; exit 1; }
  fi
  cmake --build "$build" -j"${JOBS:-2}" --target $(printf 'fuzz_%s ' "${targets[@]}")
else
  for t in "${targets[@]}"; do
    [ -x "$build/bin/fuzz_$t" ] || { echo "fuzz: no $build/bin/fuzz_$t (run scripts/fuzz.sh to build)"; exit 77; }
  done
fi

status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  log="$build/fuzz_$t.log"
  # -max_len: seeds are < 2 KB; 16 KB leaves room for multi-chunk ICC/EXIF and weights.
  # -timeout: one input taking > 60 s is a finding (a decoder loop), as is > 2 GB of memory; wall
  # time, so generous: at nice 19 on a busy 2-core machine a 50 ms input once took 11 s.
  set +e
  nice -n 19 "$build/bin/fuzz_$t" -runs="$runs" -max_total_time="$max_time" -max_len=16384 -timeout=60 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" \
    "$build/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)
  if [ $rc -ne 0 ]; then
    echo "fuzz $t: FAILED (exit $rc); see $log and $build/artifacts/$t/"
    grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5
    status=1
  else
    echo "fuzz $t: $(echo "$done_line" | sed -E 's/Done ([0-9]+) runs in ([0-9]+) second.*/\1 runs in \2 s/')"
  fi
done
exit $status
