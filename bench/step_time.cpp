// End-to-end training step time: static FW-n/BW-m against FP32 on the same model, batch and machine, measured
// side by side (alternating rounds) so that machine noise affects both alike. Reports the median ratio.
//
//   bench_step_time [--model resnet20] [--batch 128] [--size 32] [--channels 3] [--rounds 7] [--steps 3]
//                   [--threads N] [--fw 8 --bw 8] [--profile trace.json [--profile-steps 1]]
//                   [--only fp32|quantized]  (one kind only, e.g. under perf record)
//                   [--execution simulated|integer]  (how the quantized layers compute; nn/execution_mode.h)
//                   [--device cpu|cuda]  (cuda: each timed run ends when the GPU is done)
//                   [--plain 1]  (also time a plain LibTorch ResNet of the same shape: fractrain's FP32 overhead)
//                   [--fused-bn 1]  (train.fused_batch_norm for both kinds; each round also times FP32 on torch's
//                                    BatchNorm and ReLU, and the ratios against both are reported)
//                   [--graphs 1]  (cuda: each kind's forward and backward pass captured once as a CUDA Graph and
//                                  replayed, the SGD update eager after it, as train.cuda_graphs trains)
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fractrain/models/model_registry.h"
#include "fractrain/nn/batch_norm.h"
#include "fractrain/train/graphed_step.h"
#include "fractrain/util/allocator_tuning.h"
#include "fractrain/precision/static_plan.h"
#include "bench_device.h"
#include "bench_support.h"
#include "integer_counts.h"
#include "plain_resnet.h"

using namespace fractrain;
using namespace fractrain::bench;

namespace {

struct Args {
  std::string model = "resnet20";
  int64_t batch = 128, size = 32, channels = 3;
  int rounds = 7, steps = 3, threads = 0, fw = 8, bw = 8;
  std::string profile;  // write a chrome trace of FP32 and quantized steps here
  int profile_steps = 1;  // alternating FP32/quantized pairs in the trace
  std::string only;       // "fp32" or "quantized": time just that kind (for perf record); "" = both, side by side
  ExecutionMode execution = ExecutionMode::Simulated;
  std::string device = "cpu";
  bool plain = false;
  bool graphs = false;
  bool fused_bn = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--model") a.model = v;
    else if (k == "--batch") a.batch = std::stoll(v);
    else if (k == "--size") a.size = std::stoll(v);
    else if (k == "--channels") a.channels = std::stoll(v);
    else if (k == "--rounds") a.rounds = std::stoi(v);
    else if (k == "--steps") a.steps = std::stoi(v);
    else if (k == "--threads") a.threads = std::stoi(v);
    else if (k == "--fw") a.fw = std::stoi(v);
    else if (k == "--bw") a.bw = std::stoi(v);
    else if (k == "--profile") a.profile = v;
    else if (k == "--profile-steps") a.profile_steps = std::stoi(v);
    else if (k == "--only") a.only = v;
    else if (k == "--execution") a.execution = execution_mode_names().parse(v, "--execution");
    else if (k == "--device") a.device = v;
    else if (k == "--plain") a.plain = std::string(v) != "0";
    else if (k == "--graphs") a.graphs = std::string(v) != "0";
    else if (k == "--fused-bn") a.fused_bn = std::string(v) != "0";
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  if (!a.only.empty() && a.only != "fp32" && a.only != "quantized") {
    std::fprintf(stderr, "--only: expected fp32 or quantized, got '%s'\n", a.only.c_str());
    std::exit(2);
  }
  return a;
}

// Time and page faults per step over `steps` full training steps (forward, loss, backward, SGD update). `label`
// names each step in profiler traces, so that a trace with several steps can be split by step.
StepTime time_steps(QuantizedModel& model, torch::optim::SGD& sgd, const PrecisionPlan& plan, const at::Tensor& x,
                    const at::Tensor& y, int steps, const char* label) {
  return time_per_step(
      steps,
      [&] {
        RECORD_USER_SCOPE(label);
        sgd.zero_grad();
        at::Tensor loss = torch::cross_entropy_loss(model.forward(x, plan), y);
        loss.backward();
        sgd.step();
      },
      finish_on(x.device()));
}

// --graphs: one kind's forward and backward pass as a CUDA Graph, captured on first use; each step replays it, gives
// the parameters the graph's gradients back (the other kind's replay gave them its own) and updates eagerly.
class GraphedKind {
 public:
  GraphedKind(QuantizedModel& model, const c10::Device& device) : model_(model), graph_(device) {}

  StepTime time(torch::optim::SGD& sgd, const PrecisionPlan& plan, const at::Tensor& x, const at::Tensor& y,
                int steps, const char* label) {
    auto parameters = model_.parameters();
    if (!graph_.captured()) {
      for (auto& p : parameters) p.mutable_grad() = at::Tensor();  // the backward writes each gradient
      graph_.capture([&] { torch::cross_entropy_loss(model_.forward(x, plan), y).backward(); });
      for (const auto& p : parameters) grads_.push_back(p.grad());
    }
    return time_per_step(
        steps,
        [&] {
          RECORD_USER_SCOPE(label);
          graph_.replay();
          for (size_t i = 0; i < parameters.size(); ++i) parameters[i].mutable_grad() = grads_[i];
          sgd.step();
        },
        finish_on(x.device()));
  }

 private:
  QuantizedModel& model_;
  GraphedStep graph_;
  std::vector<at::Tensor> grads_;
};

// The same step on the plain LibTorch ResNet (bench/plain_resnet.h).
StepTime time_plain_steps(PlainResNet& model, torch::optim::SGD& sgd, const at::Tensor& x, const at::Tensor& y,
                          int steps) {
  return time_per_step(
      steps,
      [&] {
        RECORD_USER_SCOPE("plain_step");
        sgd.zero_grad();
        at::Tensor loss = torch::cross_entropy_loss(model->forward(x), y);
        loss.backward();
        sgd.step();
      },
      finish_on(x.device()));
}

int resnet_depth(const std::string& model) {
  if (model.rfind("resnet", 0) == 0) {
    try {
      return std::stoi(model.substr(6));
    } catch (const std::exception&) {
    }
  }
  std::fprintf(stderr, "--plain: needs a CIFAR ResNet (resnet20, resnet38, ...), got %s\n", model.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  tune_allocator_for_training();  // as the fractrain CLI does
  const Args a = parse(argc, argv);
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(threads);
  torch::manual_seed(0);
  const ModelInputSpec in{a.channels, a.size, a.size, 10};
  const c10::Device device = device_or_exit(a.device);
  if (device.is_cuda() && a.execution == ExecutionMode::Integer) {
    std::fprintf(stderr, "--execution integer runs on the CPU only (oneDNN's int8 kernels)\n");
    return 2;
  }
  auto model = create_model(a.model, in);
  model->to(device);
  model->train();
  QuantizerSettings settings = model->quantizer_settings();
  settings.execution = a.execution;
  settings.error_weight_ranges =
      a.execution == ExecutionMode::Integer ? ErrorWeightRanges::PerInputChannel : ErrorWeightRanges::PerOutputChannel;
  if (a.graphs) {
    if (!device.is_cuda() || !GraphedStep::available()) {
      std::fprintf(stderr, "--graphs 1 needs --device cuda in a CUDA build\n");
      return 2;
    }
    // Each round's noise is read from this counter, not baked into the captured kernels.
    settings.noise_step = torch::zeros({1}, torch::dtype(torch::kLong).device(device));
  }
  model->set_quantizer_settings(settings);
  set_fused_batch_norm(*model, a.fused_bn);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(1e-4));
  const at::Tensor x = torch::randn({a.batch, a.channels, a.size, a.size}).to(device);
  const at::Tensor y = torch::randint(0, 10, {a.batch}, torch::kLong).to(device);
  PlainResNet plain{nullptr};
  std::unique_ptr<torch::optim::SGD> plain_sgd;
  if (a.plain) {
    torch::manual_seed(0);
    plain = PlainResNet(resnet_depth(a.model), a.channels, 10);
    plain->to(device);
    plain->train();
    plain_sgd = std::make_unique<torch::optim::SGD>(
        plain->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(1e-4));
    time_plain_steps(plain, *plain_sgd, x, y, 2);  // warm-up
  }

  const PrecisionPlan fp32 = make_static_plan(*model, Precision::full(), {});
  PrecisionPlan quantized = make_static_plan(*model, Precision::fw_bw(a.fw, a.bw), {});
  // --graphs: everything from here runs on the graphs' stream (GraphedStep makes it current), warm-up included.
  std::unique_ptr<GraphedKind> graphed_fp32, graphed_quantized;
  if (a.graphs) {
    graphed_fp32 = std::make_unique<GraphedKind>(*model, device);
    graphed_quantized = std::make_unique<GraphedKind>(*model, device);
  }
  time_steps(*model, sgd, fp32, x, y, 2, "fp32_step");  // warm-up: oneDNN primitive creation, allocator
  time_steps(*model, sgd, quantized, x, y, 2, "quantized_step");
  const auto timed = [&](bool q, int steps) {
    const PrecisionPlan& plan = q ? quantized : fp32;
    const char* label = q ? "quantized_step" : "fp32_step";
    if (a.graphs) return (q ? graphed_quantized : graphed_fp32)->time(sgd, plan, x, y, steps, label);
    return time_steps(*model, sgd, plan, x, y, steps, label);
  };

  if (!a.profile.empty()) {
    torch::autograd::profiler::RecordProfile guard(a.profile);
    for (int p = 0; p < a.profile_steps; ++p) {
      time_steps(*model, sgd, fp32, x, y, 1, "fp32_step");
      time_steps(*model, sgd, quantized, x, y, 1, "quantized_step");
    }
    return 0;
  }
  if (!a.only.empty()) {
    const bool q = a.only == "quantized";
    const StepTime t = timed(q, a.rounds * a.steps);
    std::printf("%s only: %.1f ms/step, %.0f page faults/step\n", q ? "quantized" : "fp32", t.seconds * 1e3,
                t.faults);
    return 0;
  }
  // FP32 on torch's BatchNorm and ReLU, for --fused-bn: the baseline without the fusion, in the same rounds.
  const auto timed_torch_fp32 = [&](int steps) {
    set_fused_batch_norm(*model, false);
    const StepTime t = timed(false, steps);
    set_fused_batch_norm(*model, true);
    return t;
  };
  if (a.fused_bn) timed_torch_fp32(2);  // warm-up
  std::vector<double> t_fp32, t_quant, ratios, plain_ratios, t_torch_fp32, torch_ratios;
  for (int r = 0; r < a.rounds; ++r) {
    quantized.noise_step = static_cast<uint64_t>(r);
    if (settings.noise_step.defined()) settings.noise_step.fill_(static_cast<int64_t>(r));
    const StepTime f = timed(false, a.steps);
    const StepTime q = timed(true, a.steps);
    t_fp32.push_back(f.seconds);
    t_quant.push_back(q.seconds);
    ratios.push_back(q.seconds / f.seconds);
    std::printf("round %d: fp32 %.1f ms/step, fw%dbw%d %.1f ms/step, ratio %.3f (page faults/step %.0f, %.0f)", r,
                f.seconds * 1e3, a.fw, a.bw, q.seconds * 1e3, q.seconds / f.seconds, f.faults, q.faults);
    if (a.fused_bn) {
      const StepTime t = timed_torch_fp32(a.steps);
      t_torch_fp32.push_back(t.seconds);
      torch_ratios.push_back(q.seconds / t.seconds);
      std::printf(", fp32 on torch's BatchNorm %.1f ms/step (ratio %.3f)", t.seconds * 1e3, q.seconds / t.seconds);
    }
    if (a.plain) {
      const StepTime p = time_plain_steps(plain, *plain_sgd, x, y, a.steps);
      plain_ratios.push_back(f.seconds / p.seconds);
      std::printf(", plain LibTorch %.1f ms/step", p.seconds * 1e3);
    }
    std::printf("\n");
  }
  std::printf("\n%s batch %lld input %lldx%lldx%lld on %s, threads %d%s\n", a.model.c_str(), (long long)a.batch,
              (long long)a.channels, (long long)a.size, (long long)a.size, device.str().c_str(), threads,
              a.graphs ? ", CUDA graphs" : ", eager");
  std::printf("median step time: fp32 %.1f ms, fw%dbw%d %.1f ms\n", median(t_fp32) * 1e3, a.fw, a.bw,
              median(t_quant) * 1e3);
  std::printf("median ratio fw%dbw%d (%s) / fp32: %.3f (target: %s)\n", a.fw, a.bw, to_string(a.execution).c_str(),
              median(ratios),
              device.is_cuda() ? "<= 1.6 eager, <= 1.3 with graphs" : "simulated <= 1.15, integer <= 0.6");
  if (a.fused_bn)
    std::printf("both kinds with fused BatchNorm + ReLU; FP32 on torch's BatchNorm and ReLU: median %.1f ms, ratio "
                "fw%dbw%d (%s, fused) / that: %.3f\n",
                median(t_torch_fp32) * 1e3, a.fw, a.bw, to_string(a.execution).c_str(), median(torch_ratios));
  if (a.plain)
    std::printf("median ratio fractrain fp32 / plain LibTorch fp32: %.3f (target <= 1.10)\n", median(plain_ratios));
  if (a.execution == ExecutionMode::Integer) print_integer_passes(*model);
  return 0;
}
