// DFQ training step time (issue target: mixed <= 1.35 x FP32): a step of the gated ResNet in `mixed`, `masked`
// (fixed shapes, for GPUs) and `candidates` execution (gates, per-sample quantization, cost meter, cost term: everything a DFQ training
// step does) against an FP32 step of the plain ResNet, measured side by side in alternating rounds.
//
//   bench_dfq_step_time [--model resnet20] [--batch 128] [--size 32] [--channels 3] [--rounds 5] [--steps 3]
//                       [--threads N] [--options cifar-release] [--target 3.0] [--skip-candidates 1]
//                       [--masked 0]
//                       [--device cpu|cuda]  (cuda: each timed run ends when the GPU is done)
//                       [--quantized-execution simulated|integer]  (how the DFQ models' quantized layers compute;
//                        integer: CPU only, docs/integer.md; the target for mixed is <= 0.75)
//                       [--fused-bn 1]  (train.fused_batch_norm for every kind; FP32 on torch's BatchNorm and ReLU
//                        is timed as one more kind, and DFQ mixed's ratio to it reported)
//                       [--profile trace.json [--profile-steps 1]]  (a chrome trace of alternating FP32 and DFQ
//                        mixed steps instead of the timing, named as bench_step_time's: bench/trace_summary.py)
#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include "bench_device.h"
#include "bench_support.h"
#include "integer_counts.h"
#include "fractrain/cost/cost_meter.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/nn/batch_norm.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/precision/gating_cost.h"
#include "fractrain/util/allocator_tuning.h"

using namespace fractrain;
using namespace fractrain::bench;

namespace {

struct Args {
  std::string model = "resnet20", options = "cifar-release";
  int64_t batch = 128, size = 32, channels = 3;
  int rounds = 5, steps = 3, threads = 0;
  double target = 3.0;
  bool skip_candidates = false;
  bool masked = true;
  std::string device = "cpu";
  ExecutionMode quantized_execution = ExecutionMode::Simulated;
  std::string profile;
  int profile_steps = 1;
  bool fused_bn = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") a.model = v;
    else if (k == "--batch") a.batch = std::stoll(v);
    else if (k == "--size") a.size = std::stoll(v);
    else if (k == "--channels") a.channels = std::stoll(v);
    else if (k == "--rounds") a.rounds = std::stoi(v);
    else if (k == "--steps") a.steps = std::stoi(v);
    else if (k == "--threads") a.threads = std::stoi(v);
    else if (k == "--options") a.options = v;
    else if (k == "--target") a.target = std::stod(v);
    else if (k == "--skip-candidates") a.skip_candidates = v != "0";
    else if (k == "--masked") a.masked = v != "0";
    else if (k == "--device") a.device = v;
    else if (k == "--quantized-execution") a.quantized_execution = execution_mode_names().parse(v, k);
    else if (k == "--profile") a.profile = v;
    else if (k == "--profile-steps") a.profile_steps = std::max(1, std::stoi(v));
    else if (k == "--fused-bn") a.fused_bn = v != "0";
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

// One model with its optimizer and the work of one training step.
struct Trainee {
  std::shared_ptr<QuantizedModel> model;
  std::unique_ptr<torch::optim::SGD> sgd;
  std::unique_ptr<CostMeter> meter;  // gated models only
  PrecisionPlan plan;
  OptionSet options;  // gated models only
  double target = 0;
  // Masked execution keeps everything on the device, as the trainer does with deferred host reads: the batch's cp
  // and the term's sign are computed there, and the meter reads its counts at finish() (a read point).
  bool on_device = false;

  void step(const at::Tensor& x, const at::Tensor& y) {
    sgd->zero_grad();
    ForwardResult forward = model->run(x, plan);
    at::Tensor loss = torch::cross_entropy_loss(forward.output, y);
    if (meter && on_device) {
      const at::Tensor cp = meter->step_in_progress_on_device(x.size(0), x.device()).cp_blocks;
      const at::Tensor sign = 1.0 - 2.0 * cp.lt(target).to(at::kDouble);
      loss = loss + gating_cost(forward.decisions, options) * (sign * 1e-3).to(at::kFloat);
    } else if (meter) {  // as the trainer does: the cost term signed by the batch's cp against the target
      const double sign = meter->step_in_progress(x.size(0)).cp_blocks() < target ? -1.0 : 1.0;
      loss = loss + sign * 1e-3 * gating_cost(forward.decisions, options);
    }
    loss.backward();
    sgd->step();
    if (meter) meter->end_step(x.size(0));
  }
  void finish() {
    if (meter) meter->read_pending();
  }
};

Trainee make_trainee(const Args& a, const ModelInputSpec& in, const std::string& execution, const c10::Device& device,
                     bool fused_bn) {
  torch::manual_seed(0);
  Trainee t;
  t.target = a.target;
  if (execution.empty()) {
    t.model = create_model(a.model, in);
    t.plan = make_static_plan(*t.model, Precision::full(), {});
  } else {
    t.options = OptionSet::parse(a.options, 0);
    t.model = create_gated_model(a.model, in, t.options, gate_execution_names().parse(execution, "--execution"));
    t.meter = std::make_unique<CostMeter>(profile_model(*t.model, in),
                                          builtin_hardware_model());
    t.model->set_cost_observer(t.meter.get());
    t.on_device = execution == "masked";
    t.meter->set_reads_deferred(t.on_device);
    t.plan = PrecisionPlan::uniform(Precision::full());  // gates decide the blocks; stem and classifier FP32
    QuantizerSettings settings = t.model->quantizer_settings();
    settings.execution = a.quantized_execution;
    if (a.quantized_execution == ExecutionMode::Integer)
      settings.error_weight_ranges = ErrorWeightRanges::PerInputChannel;  // as bench_step_time and the trainer
    t.model->set_quantizer_settings(settings);
  }
  set_fused_batch_norm(*t.model, fused_bn);
  t.model->to(device);
  t.model->train();
  t.sgd = std::make_unique<torch::optim::SGD>(t.model->parameters(),
                                              torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(1e-4));
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  tune_allocator_for_training();
  const Args a = parse(argc, argv);
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(threads);
  const ModelInputSpec in{a.channels, a.size, a.size, 10};
  const c10::Device device = device_or_exit(a.device);
  const bool integer = a.quantized_execution == ExecutionMode::Integer;
  if (integer && device.is_cuda()) {
    std::fprintf(stderr, "--quantized-execution integer runs on the CPU only (oneDNN's int8 kernels)\n");
    return 2;
  }
  const at::Tensor x = torch::randn({a.batch, a.channels, a.size, a.size}).to(device);
  const at::Tensor y = torch::randint(0, 10, {a.batch}, torch::kLong).to(device);
  const std::function<void()> finish = finish_on(device);

  std::vector<std::pair<std::string, Trainee>> kinds;
  kinds.emplace_back("fp32", make_trainee(a, in, "", device, a.fused_bn));
  kinds.emplace_back("dfq mixed", make_trainee(a, in, "mixed", device, a.fused_bn));
  if (a.masked) kinds.emplace_back("dfq masked", make_trainee(a, in, "masked", device, a.fused_bn));
  if (!a.skip_candidates) kinds.emplace_back("dfq candidates", make_trainee(a, in, "candidates", device, a.fused_bn));
  if (a.fused_bn) kinds.emplace_back("fp32 torch bn", make_trainee(a, in, "", device, false));
  for (auto& kind : kinds) {
    Trainee& t = kind.second;
    time_per_step(2, [&] { t.step(x, y); }, finish);  // warm-up
    t.finish();
  }

  if (!a.profile.empty()) {
    torch::autograd::profiler::RecordProfile guard(a.profile);
    for (int p = 0; p < a.profile_steps; ++p)
      for (size_t k = 0; k < 2; ++k) {  // FP32 and DFQ mixed, under the names trace_summary.py splits steps by
        RECORD_USER_SCOPE(k == 0 ? "fp32_step" : "quantized_step");
        kinds[k].second.step(x, y);
        kinds[k].second.finish();
      }
    return 0;
  }
  std::vector<std::vector<double>> times(kinds.size()), ratios(kinds.size());
  for (int r = 0; r < a.rounds; ++r) {
    std::printf("round %d:", r);
    for (size_t k = 0; k < kinds.size(); ++k) {
      auto& t = kinds[k].second;
      times[k].push_back(time_per_step(a.steps, [&] { t.step(x, y); }, [&] {
                           t.finish();  // the read point inside the clock, as the trainer's
                           if (finish) finish();
                         }).seconds);
      ratios[k].push_back(times[k].back() / times[0].back());
      std::printf("  %s %.1f ms", kinds[k].first.c_str(), times[k].back() * 1e3);
    }
    std::printf("\n");
  }
  std::printf("\n%s batch %lld input %lldx%lldx%lld on %s, threads %d, options %s\n", a.model.c_str(),
              (long long)a.batch, (long long)a.channels, (long long)a.size, (long long)a.size, device.str().c_str(),
              threads, a.options.c_str());
  if (integer) std::printf("quantized layers: integer execution\n");
  for (size_t k = 0; k < kinds.size(); ++k)
    std::printf("median %-15s %.1f ms/step, ratio to fp32 %.3f%s\n", kinds[k].first.c_str(), median(times[k]) * 1e3,
                median(ratios[k]), k == 1 ? (integer ? " (target <= 0.75)" : " (target <= 1.35)") : "");
  if (a.fused_bn) {
    std::vector<double> to_torch;
    for (size_t r = 0; r < times[1].size(); ++r) to_torch.push_back(times[1][r] / times.back()[r]);
    std::printf("every kind but the last with fused BatchNorm + ReLU; dfq mixed / fp32 on torch's BatchNorm: %.3f\n",
                median(to_torch));
  }
  if (integer) print_integer_passes(*kinds[1].second.model);
  return 0;
}
