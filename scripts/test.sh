#!/usr/bin/env bash
# Set up, build, and run the whole test suite (GoogleTest via CTest), then the sanitizer smoke (a clang
# ASan + UBSan build of the input-parser and quantizer tests and a short run of every fuzz target). This is what
# CI runs (.ci/run). FRACTRAIN_SKIP_SANITIZE=1 skips the sanitizer smoke (a quicker local run).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/build.sh
(cd build && ctest --output-on-failure -j 2 --timeout 900)
echo "tests finished in $(( $(date +%s) - start )) s (including the build)"
if [[ "${FRACTRAIN_SKIP_SANITIZE:-0}" != 1 ]]; then
  scripts/sanitize_smoke.sh 10
fi
echo "test command finished in $(( $(date +%s) - start )) s"
