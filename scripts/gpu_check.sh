#!/usr/bin/env bash
# The GPU check in one command (issue 15, docs/gpu.md), for a machine with an NVIDIA GPU and a pip CUDA `torch` in
# python3; meant to fit 10 minutes on 16 cores. Phases, each timed into $GPU_CHECK_OUT/summary.txt (default
# gpu_check/), each logged in full next to it; a failing phase is reported and the next one still runs:
#   build   fractrain, its tests and the step-time benchmarks against that LibTorch in build-cuda/
#           (scripts/gpu_build.sh; FRACTRAIN_DEBS where apt cannot reach a mirror);
#   tests   the GPU tests (CUDA kernels bit-equal to the CPU quantizer, a static quantized step and a masked DFQ
#           step under LibTorch's sync debug mode set to error) with the device-path, quantizer, layer and masked
#           DFQ tests;
#   train   short FW-8/BW-8, auto PFQ and DFQ (masked execution) Fashion-MNIST runs on the GPU, eager and with
#           CUDA graphs (train.cuda_graphs);
#   bench   FP32 against FW-8/BW-8 steps of ResNet-20/38/74 at batch 128 on 3x32x32 (eager and with graphs), fractrain's FP32 step
#           against a plain LibTorch ResNet of the same shape, DFQ mixed against FP32 (ResNet-38), and ResNet-38
#           FW-8/BW-8 steps of one process alone against 4 processes sharing the GPU.
# GPU_CHECK_QUICK=1 benchmarks ResNet-38 only.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out="${GPU_CHECK_OUT:-gpu_check}"
mkdir -p "$out"
summary="$out/summary.txt"
: > "$summary"
phase_start=$(date +%s)
# Runs one phase: its output into $out/<name>.log, its time and status into the summary.
run_phase() {
  local name="$1"
  shift
  phase_start=$(date +%s)
  echo "== $name: $*" | tee -a "$summary"
  if "$@" > "$out/$name.log" 2>&1; then status=ok; else status="FAILED (exit $?)"; fi
  echo "   $status in $(( $(date +%s) - phase_start )) s" | tee -a "$summary"
}
[[ -n "${FRACTRAIN_DEBS:-}" ]] && export LD_LIBRARY_PATH="/tmp/fractrain-deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"

FRACTRAIN_CMAKE_ARGS="-DFRACTRAIN_BUILD_BENCH=ON ${FRACTRAIN_CMAKE_ARGS:-}" \
  run_phase build scripts/gpu_build.sh fractrain_cli fractrain_tests bench_step_time bench_dfq_step_time
run_phase tests build-cuda/tests/fractrain_tests \
  --gtest_filter='Gpu*:Device*:KernelThreads*:QConv2d*:QLinear*:FakeQuantize*:DfqMasked*:MaskedBatchNorm*:RunningSamples*'
grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/tests.log" | tee -a "$summary"
# One short run per method (100 steps; DFQ in masked execution, the GPU's), eager and with CUDA graphs: each must
# learn (its test accuracy and images/s are in the summary; chance is 10 %).
for graphs in false true; do
  for method in fw8bw8 pfq_auto_4stage dfq; do
    run="train_${method}_graphs_$graphs"
    run_phase "$run" build-cuda/fractrain train -q --config "configs/fashion_mnist_$method.toml" \
      --set train.device=cuda --set train.iterations=100 --set dfq.execution=masked --set train.cuda_graphs=$graphs \
      --set output.dir="$out/$run" --overwrite
    grep -E 'test accuracy|images/s' "$out/$run.log" | tail -2 | sed "s/^/   $method, graphs $graphs: /" |
      tee -a "$summary"
  done
done

models=(resnet20 resnet38 resnet74)
[[ "${GPU_CHECK_QUICK:-0}" == 1 ]] && models=(resnet38)
for model in "${models[@]}"; do
  run_phase "step_$model" build-cuda/bench/bench_step_time --device cuda --model "$model" --batch 128 --rounds 5 \
    --steps 20 --plain 1
  grep -E '^median' "$out/step_$model.log" | sed "s/^/   $model eager: /" | tee -a "$summary"
  run_phase "step_${model}_graphs" build-cuda/bench/bench_step_time --device cuda --model "$model" --batch 128 \
    --rounds 5 --steps 20 --graphs 1
  grep -E '^median' "$out/step_${model}_graphs.log" | sed "s/^/   $model graphs: /" | tee -a "$summary"
done
run_phase dfq_resnet38 build-cuda/bench/bench_dfq_step_time --device cuda --model resnet38 --batch 128 --rounds 5 \
  --steps 10 --skip-candidates 1
grep -E '^median' "$out/dfq_resnet38.log" | sed 's/^/   /' | tee -a "$summary"

# One process alone on the GPU, then 4 at once: each prints its own ms per FW-8/BW-8 step.
share() {
  local n="$1" pids=() i
  for ((i = 0; i < n; ++i)); do
    build-cuda/bench/bench_step_time --device cuda --model resnet38 --batch 128 --only quantized --rounds 5 \
      --steps 20 > "$out/share${n}_$i.log" 2>&1 &
    pids+=($!)
  done
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  cat "$out"/share"${n}"_*.log
  return $failed
}
for n in 1 4; do
  run_phase "share_$n" share "$n"
  ms=$(grep -ho 'quantized only: [0-9.]*' "$out"/share"${n}"_*.log | awk '{print $3}' | paste -sd' ')
  echo "   $n process(es) sharing the GPU, ms per step each: $ms" | tee -a "$summary"
  echo "   images/s together: $(echo "$ms" | awk '{s = 0; for (i = 1; i <= NF; ++i) s += 128000 / $i; printf "%.0f", s}')" |
    tee -a "$summary"
done
echo "summary: $summary"
