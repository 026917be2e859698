#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, the fractrain library instrumented for coverage) into
# build-fuzz/ and runs each for SECONDS (default 600) on a copy of its seed corpus (fuzz/corpus/<target>).
# Prints, per target, the executions, coverage and whether it found a crash, leak or sanitizer report.
#   scripts/fuzz.sh [SECONDS] [TARGET...]       targets: idx cifar config checkpoint tokens (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(idx cifar config checkpoint tokens)
FRACTRAIN_EXTRA_PACKAGES="clang libclang-rt-14-dev libomp-14-dev" scripts/setup.sh
configure_log=$(mktemp)
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DFRACTRAIN_FUZZ=ON -DFRACTRAIN_BUILD_TESTS=OFF -DFRACTRAIN_BUILD_BENCH=OFF > "$configure_log" 2>&1 || { cat "$configure_log"; exit 1; }
ninja -C build-fuzz -j2 $(printf 'fuzz_%s ' "${targets[@]}")
# LibTorch is not instrumented and keeps global allocations alive at exit: leak reports would be its own.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:alloc_dealloc_mismatch=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${targets[@]}"; do
  work=build-fuzz/corpus-$t
  mkdir -p "$work" build-fuzz/artifacts-$t
  cp -n fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
  log=build-fuzz/fuzz_$t.log
  if build-fuzz/fuzz/fuzz_$t "$work" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
       -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts-$t/ > "$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log and build-fuzz/artifacts-$t/)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "fuzz_$t: $result, ${seconds} s, $execs executions, coverage $cov edges, corpus $(ls "$work" | wc -l) inputs"
done
exit $status
