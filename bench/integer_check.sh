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
#   5. with --epochs: one Fashion-MNIST epoch (seed 1) of each kind, in rounds (--epoch-rounds, default 2; the
#      machine's drift between runs then falls on every kind alike): FP32 on torch's BatchNorm and fused
#      (train.fused_batch_norm), the FW-8/BW-8 demo recipe in integer (the FracTrain recipe, 3-6-bit activations, on
#      AVX2) and, with dot products, FracTrain in integer, all fused; then FracTrain simulated once for its accuracy.
#      A table of train seconds by round, medians, ratios to fused FP32 and test accuracies ends it (epochs.txt).
#      --only-epochs runs this part alone.
# Pause other work on the machine first: the ratios are side by side, but a loaded machine still skews them.
#   bench/integer_check.sh [--build DIR] [--out DIR] [--threads 2] [--epochs] [--epoch-rounds N] [--only-epochs]
# Writes OUT/<part>.txt (default OUT: BUILD/integer_check) and prints each part as it runs.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build out="" threads=2 epochs=0 epoch_rounds=2 only_epochs=0
while (($#)); do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --epochs) epochs=1; shift ;;
    --epoch-rounds) epochs=1; epoch_rounds=$2; shift 2
      ((epoch_rounds >= 1)) || { echo "integer_check.sh: --epoch-rounds needs 1 or more, got $epoch_rounds" >&2; exit 2; } ;;
    --only-epochs) epochs=1; only_epochs=1; shift ;;
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

if ((!only_epochs)); then  # the benchmarks take BatchNorm + ReLU fused in both kinds (train.fused_batch_norm)
  part tests "$build/tests/fractrain_tests" --gtest_filter='Integer*:TrainEndToEnd.IntegerExecution*'
  part ops "$build/bench/bench_integer_ops" --threads "$threads" --reps 15 --bits "$bits"
  part matmul "$build/bench/bench_integer_matmul" --threads "$threads" --reps 21
  if ((bits == 8)); then
    part step_fw8bw8 "$build/bench/bench_step_time" --execution integer --threads "$threads" --rounds 7 --steps 2 \
      --fused-bn 1
  fi
  part "step_fw${rest_fw}bw${rest_bw}" "$build/bench/bench_step_time" --execution integer --fw "$rest_fw" \
    --bw "$rest_bw" --threads "$threads" --rounds 5 --steps 2 --fused-bn 1
  part step_resnet38 "$build/bench/bench_step_time" --model resnet38 --execution integer --fw "$deep_fw" \
    --bw "$deep_bw" --threads "$threads" --rounds 3 --steps 2 --fused-bn 1
  part step_dfq "$build/bench/bench_dfq_step_time" --quantized-execution integer --threads "$threads" --rounds 5 \
    --steps 2 --masked 0 --skip-candidates 1 --fused-bn 1
fi
if ((epochs)); then
  epoch() {  # epoch RECIPE EXECUTION FUSED_BATCH_NORM RUN
    part "epoch_$4" "$build/fractrain" train -c "configs/fashion_mnist_$1.toml" --set train.epochs=1 \
      --set train.threads="$threads" --set train.seed=1 --set precision.execution="$2" \
      --set train.fused_batch_norm="$3" --set output.dir="$out/runs/$4" --quiet
  }
  # Every kind once per round, rounds one after another: the machine's drift between runs (up to 15 % here) then
  # falls on every kind alike. FP32 on torch's BatchNorm (the default) and fused; the integer recipes fused.
  kinds="fp32_torch_bn fp32_fused ${recipe}_integer"
  if [[ $recipe != fractrain ]]; then kinds="$kinds fractrain_integer"; fi  # the acceptance times FracTrain too
  for ((round = 1; round <= epoch_rounds; round++)); do
    epoch fp32 simulated false "fp32_torch_bn_$round"
    epoch fp32 simulated true "fp32_fused_$round"
    epoch "$recipe" integer true "${recipe}_integer_$round"
    if [[ $recipe != fractrain ]]; then epoch fractrain integer true "fractrain_integer_$round"; fi
  done
  epoch fractrain simulated true fractrain_simulated  # its accuracy next to the integer runs'
  python3 - "$out/runs" "$epoch_rounds" $kinds <<'PY' | tee "$out/epochs.txt"
import json, statistics, sys
runs, rounds, kinds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def summary(run):
    return json.load(open(f"{runs}/{run}/summary.json"))
print(f"{'kind':24} {'train s by round':>28} {'median':>8} {'/ fp32 fused':>13} {'test acc':>9}")
fused = statistics.median(summary(f"fp32_fused_{r}")["train_seconds"] for r in range(1, rounds + 1))
for kind in kinds:
    seconds = [summary(f"{kind}_{r}")["train_seconds"] for r in range(1, rounds + 1)]
    accuracy = summary(f"{kind}_1")["final_test_accuracy"]
    median = statistics.median(seconds)
    print(f"{kind:24} {' '.join(f'{s:.1f}' for s in seconds):>28} {median:8.1f} {median / fused:13.3f} "
          f"{accuracy:9.4f}")
print(f"{'fractrain_simulated':24} {summary('fractrain_simulated')['train_seconds']:28.1f} {'':8} {'':13} "
      f"{summary('fractrain_simulated')['final_test_accuracy']:9.4f}")
PY
fi
echo "integer_check.sh: outputs in $out"
