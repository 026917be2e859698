#!/usr/bin/env bash
# Checks the installed package: installs an already built build directory into a temporary prefix, builds
# examples/custom_model against it with find_package(fractrain) in a build directory of its own and runs it (it
# trains a few steps and exits 1 unless the loss fell; it must print its cost), then runs the installed CLI from
# outside the source tree, where it must price a model with the built-in hardware model.
# Usage: scripts/check_install.sh [BUILD_DIR]   (default: build; scripts/test.sh runs it after the tests)
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD
build_dir=$(realpath "${1:-build}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

fail() {
  echo "error: check_install: $*" >&2
  exit 1
}

cmake --install "$build_dir" --prefix "$prefix" > "$work/install.log"
for file in lib/libfractrain.a include/fractrain/cost/cost_meter.h include/fractrain/nn/qconv2d.h bin/fractrain \
            lib/cmake/fractrain/fractrainConfig.cmake lib/cmake/fractrain/fractrainConfigVersion.cmake \
            lib/cmake/fractrain/fractrainTargets.cmake share/fractrain/configs/fashion_mnist_fw8bw8.toml \
            share/fractrain/configs/sweeps/fashion_mnist_tiny.toml share/fractrain/configs/hardware/bitfusion.toml; do
  [[ -f "$prefix/$file" ]] || fail "the install lacks $file (see $build_dir/install_manifest.txt)"
done
# The exported target must not point into the source or build tree (it would break once those are gone).
if grep -n -e "$source_dir" -e "$build_dir" "$prefix"/lib/cmake/fractrain/*.cmake; then
  fail "the installed CMake package names the source or build tree (lines above)"
fi

# A user's project: configured and built against the prefix (the consumer must not need fractrain's PCH), and
# the LibTorch the build used when that was not the system's (its CMAKE_PREFIX_PATH).
build_prefix_path=$(sed -n 's/^CMAKE_PREFIX_PATH:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
cmake -S examples/custom_model -B "$work/example-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix${build_prefix_path:+;$build_prefix_path}" > "$work/example-configure.log" ||
  { cat "$work/example-configure.log"; fail "configuring examples/custom_model against the install failed"; }
cmake --build "$work/example-build" -j 1 > "$work/example-build.log" ||
  { cat "$work/example-build.log"; fail "building examples/custom_model against the install failed"; }
(cd "$work" && ./example-build/custom_model) | tee "$work/example.log" || fail "examples/custom_model failed"
grep -q '^loss: ' "$work/example.log" || fail "examples/custom_model printed no loss summary"
grep -qE '^cost of [0-9]+ samples at fw8bw8: .* cp [0-9.]+% of FP32' "$work/example.log" ||
  fail "examples/custom_model printed no cost"

# The installed CLI, run from a directory outside the source tree, with no hardware file given.
(cd "$work" && "$prefix/bin/fractrain" cost resnet20) > "$work/cost.log" ||
  { cat "$work/cost.log"; fail "the installed 'fractrain cost resnet20' failed"; }
grep -q '^hardware: .*(built-in BitFusion model' "$work/cost.log" ||
  { cat "$work/cost.log"; fail "the installed CLI did not price with the built-in hardware model"; }
echo "check_install: the package installs, examples/custom_model builds against it and trains, and the CLI runs" \
     "from the prefix"
