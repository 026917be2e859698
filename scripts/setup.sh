#!/usr/bin/env bash
# Installs every Debian package fractrain needs to build, test and run. Idempotent and non-interactive.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev            # LibTorch 1.13 (CPU, oneDNN): tensors, autograd, optimizers
  libcli11-dev            # command line
  libtomlplusplus-dev     # TOML configs
  nlohmann-json3-dev      # metrics and summaries
  libfmt-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  zlib1g-dev              # gzip IDX files
  libturbojpeg0-dev       # JPEG decoding for image folders (ImageNet)
  libpng-dev              # PNG decoding for image folders (ImageNet holds a few PNGs)
  gnuplot-nox             # plots
  dataset-fashion-mnist   # default data: /usr/share/datasets/fashion-mnist
  wordnet-base python3    # scripts/make_wordnet_corpus.py: a small real text corpus for the Transformer LM
  libprotobuf-dev protobuf-compiler  # TensorBoard event files (src/report/tensorboard_event.proto)
  python3-venv            # scripts/python_env.sh: a venv with TensorBoard's reader for the event-file test
)
# Scripts that need more (scripts/fuzz.sh, scripts/sanitize.sh: clang and its sanitizer runtimes) name them here.
read -r -a extra <<< "${FRACTRAIN_EXTRA_PACKAGES:-}"
PACKAGES+=("${extra[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
