#!/usr/bin/env bash
# Proves the CUDA build on a machine with an NVIDIA GPU and a pip `torch` (CUDA) in python3: builds fractrain
# against that LibTorch into build-cuda/, runs the device tests, a short FW-8/BW-8 training run on the GPU, and
# the step-time benchmark on CPU threads for reference. Needs cmake, ninja, a C++ compiler, and the Debian
# -dev packages of scripts/setup.sh (run that first where apt works).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PREFIX="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0))'
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
      -DFRACTRAIN_BUILD_BENCH=OFF
cmake --build build-cuda -j "$(nproc)"
build-cuda/tests/fractrain_tests --gtest_filter='Device*:QConv2d*:FakeQuantize*'
time build-cuda/fractrain train -q --config configs/fashion_mnist_fw8bw8.toml --set train.device=cuda \
  --set train.iterations=200 --set output.dir=runs/gpu_check
