#!/usr/bin/env bash
# Set up, build, and run the whole test suite (GoogleTest via CTest), then the install check
# (scripts/check_install.sh: examples/custom_model built against an installed fractrain), then the sanitizer smoke
# (a clang ASan + UBSan build of the input-parser and quantizer tests and a short run of every fuzz target; that
# build also compiles the library without the precompiled header, which checks that every file includes what it
# uses), then the same suite on a build against the pip wheel's LibTorch 2.11 with the CUDA kernels compiled and
# linked (scripts/torch2_test.sh; it downloads about 3 GB from PyPI the first time). This is what CI runs (.ci/run).
# FRACTRAIN_SKIP_SANITIZE=1 skips the sanitizer smoke, FRACTRAIN_SKIP_TORCH2=1 the 2.11 suite (quicker local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
phase_start=$start
# Prints how long the phase that just ended took (CI has 90 minutes for all of them).
phase_done() {
  echo "phase '$1' took $(( $(date +%s) - phase_start )) s"
  phase_start=$(date +%s)
}
# Runs scripts/setup.sh first, which installs Fashion-MNIST for the real-data tests. CI builds with warnings as
# errors: a warning in fractrain's own code fails the test command (FRACTRAIN_WARNINGS_AS_ERRORS=OFF to look past
# them locally).
scripts/build.sh -DFRACTRAIN_WARNINGS_AS_ERRORS="${FRACTRAIN_WARNINGS_AS_ERRORS:-ON}"
scripts/python_env.sh build   # tensorboard from PyPI, for tests/tensorboard_reads_events.py
phase_done "setup and build"
(cd build && ctest --output-on-failure -j 2 --timeout 900) | tee build/ctest.log
phase_done "tests"
scripts/check_test_skips.sh build/Testing/Temporary/LastTest.log
echo "tests finished in $(( $(date +%s) - start )) s (including the build)"
scripts/check_install.sh build   # the installed package: examples/custom_model against it, the CLI outside the tree
phase_done "install and example"
if [[ "${FRACTRAIN_SKIP_SANITIZE:-0}" != 1 ]]; then
  scripts/sanitize_smoke.sh 10
  phase_done "sanitizer smoke"
fi
if [[ "${FRACTRAIN_SKIP_TORCH2:-0}" != 1 ]]; then
  scripts/torch2_test.sh
  phase_done "LibTorch 2.11 build and tests"
fi
echo "test command finished in $(( $(date +%s) - start )) s"
