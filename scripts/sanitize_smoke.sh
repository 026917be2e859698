#!/usr/bin/env bash
# The sanitizer part of the test command (scripts/test.sh), sized for CI: one clang build with ASan + UBSan
# (build-fuzz/, as scripts/fuzz.sh) of the libFuzzer targets and of the unit tests of fractrain's input parsers
# and quantizer; runs those tests, then each fuzz target for SECONDS (default 15) from its seed corpus.
# The build does not use the precompiled header (FRACTRAIN_USE_PCH=OFF): it compiles every library source, so
# it is also CI's check that each file includes what it uses rather than leaning on <torch/torch.h> in the PCH,
# at less cost than a build of its own. Any sanitizer report, crash or failed test fails the script.
# Long fuzzing: scripts/fuzz.sh; every test under sanitizers: scripts/sanitize.sh.
#   scripts/sanitize_smoke.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
start=$(date +%s)
FRACTRAIN_EXTRA_PACKAGES="clang libclang-rt-14-dev libomp-14-dev" scripts/setup.sh
configure_log=$(mktemp)
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DFRACTRAIN_FUZZ=ON -DFRACTRAIN_USE_PCH=OFF -DFRACTRAIN_BUILD_TESTS=OFF -DFRACTRAIN_BUILD_BENCH=OFF \
  > "$configure_log" 2>&1 ||
  { cat "$configure_log"; exit 1; }
targets=$(sed -n 's/^foreach(target \(.*\))$/\1/p' fuzz/CMakeLists.txt)
ninja -C build-fuzz -j2 fractrain_sanitized_tests fractrain_cli $(printf 'fuzz_%s ' $targets)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:alloc_dealloc_mismatch=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
build-fuzz/fuzz/fractrain_sanitized_tests --gtest_brief=1
scripts/fuzz.sh "$seconds" $targets
echo "sanitizer smoke finished in $(( $(date +%s) - start )) s (including the build)"
