#!/usr/bin/env bash
# Installs every Debian package fractrain needs to build, test and run. Idempotent and non-interactive.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev            # LibTorch 1.13 (CPU, oneDNN): tensors, autograd, optimizers
  libgloo-dev             # Gloo headers for c10d ProcessGroupGloo (multi-process training; Gloo itself is in LibTorch)
  # LibTorch's Linear and matmul call the Fortran BLAS in libblas.so.3; Debian's default is the reference BLAS,
  # about 10x slower. OpenBLAS registers a libblas.so.3 (and liblapack.so.3) alternative with priority 95
  # against the reference's 10, and the alternative is in auto mode, so installing it is enough:
  # `update-alternatives --display libblas.so.3-x86_64-linux-gnu` then shows the openblas-openmp one as current.
  # The OpenMP flavour runs on LibTorch's OpenMP threads (libgomp) instead of starting a second pthread pool
  # that would compete with them for the cores.
  libopenblas0-openmp
  libdnnl-dev             # oneDNN's headers: int8 primitives for integer execution (the libdnnl2 LibTorch runs on)
  libsimde-dev            # SIMDe: tests run the VNNI weight-gradient kernel's vector form on CPUs without VNNI
  libblas3                # the reference BLAS: the test that `train` warns about it loads it explicitly
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
  iproute2                # tests: two network namespaces stand for two machines (ip netns)
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

# Installing OpenBLAS selects it only while the libblas.so.3 alternative is in auto mode; one set by hand keeps
# pointing at the reference BLAS. Say so here rather than leave every Linear layer ~10x slower.
blas_alternative="libblas.so.3-$(gcc -print-multiarch)"
blas_in_use=$(update-alternatives --query "$blas_alternative" 2>/dev/null | sed -n 's/^Value: //p')
if [[ "$blas_in_use" != */openblas*/* ]]; then
  echo "setup.sh: warning: libblas.so.3 is ${blas_in_use:-not set}, not OpenBLAS;" \
       "sudo update-alternatives --auto $blas_alternative selects it" >&2
fi
