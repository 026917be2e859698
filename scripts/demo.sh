#!/usr/bin/env bash
# The main job: set up, build, and train ResNet-20 on Fashion-MNIST at static FW-8/BW-8 for one epoch
# (a few minutes on 2 cores), printing progress and a result summary. Extra arguments go to `fractrain train`,
# e.g. scripts/demo.sh --set precision.fw=0 --set precision.bw=0 for the FP32 reference.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# --overwrite: running the demo again replaces the previous demo run (a plain `fractrain train` into a directory
# that holds a run refuses to start, so that nothing is replaced by accident).
exec build/fractrain train --config configs/fashion_mnist_fw8bw8.toml --overwrite "$@"
