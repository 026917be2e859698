#!/usr/bin/env bash
# Builds fractrain and its unit tests with clang, AddressSanitizer and UndefinedBehaviorSanitizer (fractrain's
# own code; LibTorch is Debian's uninstrumented build) into build-asan/ and runs the tests. Any sanitizer report
# fails the test that triggered it.
#   scripts/sanitize.sh [CTEST ARGS...]     e.g. scripts/sanitize.sh -R 'Dfq|Checkpoint'
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
FRACTRAIN_EXTRA_PACKAGES="clang libclang-rt-14-dev libomp-14-dev" scripts/setup.sh
configure_log=$(mktemp)
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DFRACTRAIN_SANITIZE=ON -DFRACTRAIN_BUILD_BENCH=OFF > "$configure_log" 2>&1 || { cat "$configure_log"; exit 1; }
ninja -C build-asan -j2
scripts/python_env.sh build-asan   # tests/tensorboard_reads_events.py
# LibTorch keeps global allocations alive at exit and was built without ASan: its leak and new/delete-mismatch
# reports are not ours. UBSan stops at the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:alloc_dealloc_mismatch=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd build-asan
ctest --output-on-failure -j 2 --timeout 1800 "$@"
echo "sanitizer tests finished in $(( $(date +%s) - start )) s (including the build)"
