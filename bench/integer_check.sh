#!/usr/bin/env bash
# Everything issue 18 (integer execution, docs/integer.md) measures, in one run. On a CPU with 8-bit dot products
# (AVX-512 VNNI, AVX-VNNI or AMX) at 8 bits; on a CPU with AVX2 only, where integer execution takes codes up to 7
# bits, at 6 bits and with the recipes that run there (FW-8/BW-8 would fall back to simulated):
#   1. the integer test suites, the own weight-gradient kernel's vector form among them (its first execution on a
#      new kind of CPU: run before trusting any number below);
#   2. bench_integer_ops: each integer pass against oneDNN's FP32 convolution, and the weight gradient's products
#      side by side (patches, the own kernel, the layers' choice);
#   3. bench_integer_matmul: the attention matmuls against the simulated path;
#   4. bench_step_time: integer FW-8/BW-8 (dot products only), PFQ's FW-4/BW-6 stage and ResNet-38 against FP32 (the
#      0.6x target); bench_dfq_step_time: DFQ mixed under integer execution (the 0.75x target);
#   5. with --epochs: one Fashion-MNIST epoch, FP32 and integer (seed 1) in the order FP32, integer, integer, FP32
#      (the machine's drift shows in the two FP32 times): the FW-8/BW-8 demo recipe with dot products, the FracTrain
#      recipe (3-6-bit activations) on AVX2; with dot products then also FracTrain's first epoch, integer and
#      simulated.
# Pause other work on the machine first: the ratios are side by side, but a loaded machine still skews them.
#   bench/integer_check.sh [--build DIR] [--out DIR] [--threads 2] [--epochs]
# Writes OUT/<part>.txt (default OUT: BUILD/integer_check) and prints each part as it runs.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build out="" threads=2 epochs=0
while (($#)); do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --epochs) epochs=1; shift ;;
    *) echo "integer_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
out=${out:-$build/integer_check}
if grep -qwE 'avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo; then
  bits=8 recipe=fw8bw8 rest_fw=4 rest_bw=6 deep_fw=8 deep_bw=8
elif grep -qw avx2 /proc/cpuinfo; then
  bits=6 recipe=fractrain rest_fw=4 rest_bw=6 deep_fw=4 deep_bw=6
else
  echo "integer_check.sh: this CPU has neither 8-bit dot products (AVX-512 VNNI, AVX-VNNI, AMX) nor AVX2:" \
       "integer execution refuses here, so there is nothing to measure (docs/integer.md, 'Availability')" >&2
  exit 1
fi
for target in tests/fractrain_tests bench/bench_integer_ops bench/bench_integer_matmul bench/bench_step_time \
              bench/bench_dfq_step_time fractrain; do
  [[ -x "$build/$target" ]] ||
    { echo "integer_check.sh: $build/$target is not built (ninja -C $build $(basename "$target"))" >&2; exit 1; }
done
mkdir -p "$out"

part() {  # part NAME COMMAND...: runs it, shows and keeps its output
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.txt"
}

part tests "$build/tests/fractrain_tests" --gtest_filter='Integer*:TrainEndToEnd.IntegerExecution*'
part ops "$build/bench/bench_integer_ops" --threads "$threads" --reps 15 --bits "$bits"
part matmul "$build/bench/bench_integer_matmul" --threads "$threads" --reps 21
if ((bits == 8)); then
  part step_fw8bw8 "$build/bench/bench_step_time" --execution integer --threads "$threads" --rounds 7 --steps 2
fi
part "step_fw${rest_fw}bw${rest_bw}" "$build/bench/bench_step_time" --execution integer --fw "$rest_fw" \
  --bw "$rest_bw" --threads "$threads" --rounds 5 --steps 2
part step_resnet38 "$build/bench/bench_step_time" --model resnet38 --execution integer --fw "$deep_fw" \
  --bw "$deep_bw" --threads "$threads" --rounds 3 --steps 2
part step_dfq "$build/bench/bench_dfq_step_time" --quantized-execution integer --threads "$threads" --rounds 5 \
  --steps 2 --masked 0 --skip-candidates 1
if ((epochs)); then
  epoch() {  # epoch RECIPE EXECUTION RUN
    part "epoch_$3" "$build/fractrain" train -c "configs/fashion_mnist_$1.toml" --set train.epochs=1 \
      --set train.threads="$threads" --set train.seed=1 --set precision.execution="$2" \
      --set output.dir="$out/runs/$3"
  }
  epoch fp32 simulated fp32_a
  epoch "$recipe" integer integer_a
  epoch "$recipe" integer integer_b
  epoch fp32 simulated fp32_b
  runs="fp32_a integer_a integer_b fp32_b"
  if [[ $recipe != fractrain ]]; then  # the issue's real-data acceptance times FracTrain's integer epoch as well
    epoch fractrain integer fractrain_integer
    epoch fractrain simulated fractrain_simulated
    runs="$runs fractrain_integer fractrain_simulated"
  fi
  for run in $runs; do
    python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(sys.argv[2], 'test accuracy', \
s['final_test_accuracy'], 'train s', round(s['train_seconds'], 1))" "$out/runs/$run/summary.json" "$run"
  done | tee "$out/epochs.txt"
fi
echo "integer_check.sh: outputs in $out"
