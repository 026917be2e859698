#!/usr/bin/env bash
# Set up, build, and run the whole test suite (GoogleTest via CTest). This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/build.sh
cd build
ctest --output-on-failure -j 2 --timeout 900
echo "tests finished in $(( $(date +%s) - start )) s (including the build)"
