#!/usr/bin/env bash
# Installs the Debian packages (scripts/setup.sh), then configures and builds fractrain in ./build (Release).
# Extra arguments go to CMake, e.g. scripts/build.sh -DCMAKE_PREFIX_PATH=/path/to/libtorch for a CUDA LibTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
JOBS="${FRACTRAIN_BUILD_JOBS:-2}"   # each LibTorch translation unit needs ~1 GB of memory to compile
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$JOBS"
