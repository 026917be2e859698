#!/usr/bin/env bash
# Proves the CUDA build on a machine with an NVIDIA GPU and a pip `torch` (CUDA) in python3: builds fractrain
# against that LibTorch into build-cuda/ (scripts/gpu_build.sh; set FRACTRAIN_DEBS where apt cannot reach a
# mirror, see docs/gpu.md), runs the device tests and a short FW-8/BW-8 training run on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/gpu_build.sh fractrain_cli fractrain_tests
[[ -n "${FRACTRAIN_DEBS:-}" ]] && export LD_LIBRARY_PATH="/tmp/fractrain-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
build-cuda/tests/fractrain_tests --gtest_filter='Device*:Gpu*:QConv2d*:FakeQuantize*'
time build-cuda/fractrain train -q --config configs/fashion_mnist_fw8bw8.toml --set train.device=cuda \
  --set train.iterations=200 --set output.dir=runs/gpu_check
