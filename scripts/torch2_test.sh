#!/usr/bin/env bash
# The second LibTorch generation (issue 15, docs/gpu.md): installs the pip `torch` wheel (2.11.0, built with CUDA
# 13.0 like the machine's nvcc) into build-torch2/venv, builds fractrain against its LibTorch with CUDA on (the
# kernels of src/cuda compiled and linked for sm_90, NCCL for data parallelism), and runs the CPU test suite on
# that build. No GPU is needed: the CUDA libraries load without a device, and the tests that need one skip.
# The first run downloads about 3 GB (torch and NVIDIA's libraries; 4.6 GB installed, 3 minutes here). On 2 cores
# the (unity) build takes about 11 minutes and the tests about 3; scripts/test.sh runs this after the main suite.
#   scripts/torch2_test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
version=2.11.0
venv=build-torch2/venv
if ! "$venv/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$version')" 2>/dev/null
then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==$version"
fi
# Warnings are errors here too, as in the main build: fractrain's own code must compile cleanly against both.
PATH="$PWD/$venv/bin:$PATH" FRACTRAIN_BUILD_DIR=build-torch2 \
  FRACTRAIN_CMAKE_ARGS="-DFRACTRAIN_WARNINGS_AS_ERRORS=${FRACTRAIN_WARNINGS_AS_ERRORS:-ON}" \
  scripts/gpu_build.sh fractrain_cli fractrain_tests dist_launch_probe
grep -q 'FRACTRAIN_CUDA:BOOL=ON' build-torch2/CMakeCache.txt ||
  { echo "error: the pip LibTorch $version build did not enable CUDA (FRACTRAIN_CUDA)" >&2; exit 1; }
scripts/python_env.sh build-torch2   # tensorboard, for the same Python test as in the main build
(cd build-torch2 && ctest --output-on-failure -j 2 --timeout 900) | tee build-torch2/ctest.log
scripts/check_test_skips.sh build-torch2/Testing/Temporary/LastTest.log --without-gloo
