#!/usr/bin/env bash
# Builds fractrain against the CUDA LibTorch of the pip `torch` in python3, with the CUDA kernels (src/cuda) for
# TORCH_CUDA_ARCH_LIST (default 9.0, Hopper). A GPU is not needed to build (scripts/torch2_test.sh builds and
# tests this way on CPU machines). On a GPU machine where apt cannot reach a mirror, the Debian -dev packages
# fractrain needs can travel as .deb files in $FRACTRAIN_DEBS (made with `apt-get download`, see docs/gpu.md);
# they are unpacked into /tmp/fractrain-deps and put on the CMake and loader paths.
# Usage: scripts/gpu_build.sh [ninja targets...]   (default: fractrain_cli)
# FRACTRAIN_CXX_FLAGS, when set, replaces the fmt choice below. FRACTRAIN_BUILD_DIR: the build directory (default
# build-cuda). Extra CMake arguments: FRACTRAIN_CMAKE_ARGS. Prints the library path to export as LD_LIBRARY_PATH
# for running the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
deps=/tmp/fractrain-deps
prefix="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
if [[ -n "${FRACTRAIN_DEBS:-}" ]]; then
  mkdir -p "$deps"
  for f in "$FRACTRAIN_DEBS"/*.deb; do dpkg -x "$f" "$deps"; done
  prefix="$prefix;$deps/usr;$deps/usr/lib/x86_64-linux-gnu/cmake"
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
fi
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu",
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")'
# A pip torch ships fmt's headers (a newer major version than Debian's libfmt) on its include path, ahead of
# Debian's: use them header-only so that no libfmt of another version is needed at link time.
torch_include="$(python3 -c 'import torch.utils.cpp_extension as c;print(c.include_paths()[0])')"
cxx_flags="${FRACTRAIN_CXX_FLAGS-}"
if [[ -n "$cxx_flags" ]]; then :
elif [[ -f "$torch_include/fmt/format-inl.h" ]]; then cxx_flags="-DFMT_HEADER_ONLY"
elif [[ -n "${FRACTRAIN_DEBS:-}" ]]; then cxx_flags="-I$deps/usr/include"; fi
build_dir="${FRACTRAIN_BUILD_DIR:-build-cuda}"
# TorchConfig.cmake finds libtorch.so and libc10.so with find_library(... PATHS <torch>/lib), which searches the
# system's directories first: on a machine that also has Debian's LibTorch (libtorch-dev), TORCH_LIBRARY and
# c10_LIBRARY were Debian's 1.13, and a program that took libc10 from there crashed at start (dist_launch_probe).
# CMAKE_LIBRARY_PATH is searched before the system; -U drops what an earlier configure cached.
torch_lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
# shellcheck disable=SC2086  # FRACTRAIN_CMAKE_ARGS is a list of arguments
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_CXX_FLAGS="$cxx_flags" -DZLIB_ROOT="$deps/usr" -DFRACTRAIN_BUILD_BENCH=OFF \
      -DFRACTRAIN_BUILD_TESTS="${FRACTRAIN_BUILD_TESTS:-ON}" -DTORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" \
      -DCMAKE_LIBRARY_PATH="$torch_lib" -UTORCH_LIBRARY -Uc10_LIBRARY \
      ${FRACTRAIN_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$(nproc)" -- -k 0 "${@:-fractrain_cli}"
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
