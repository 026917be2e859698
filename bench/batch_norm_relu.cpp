// BatchNorm + ReLU (+ a residual before the ReLU) in training: torch's ops against the fused op
// (train.fused_batch_norm, nn/fused_batch_norm.h), forward and backward separately, on ResNet-20's shapes at
// batch 128, side by side in one process. Milliseconds, median of --reps.
//
//   bench_batch_norm_relu [--threads 2] [--reps 15] [--batch 128]
#include <torch/torch.h>

#include <cstdio>
#include <string>
#include <thread>

#include "fractrain/nn/batch_norm.h"
#include "bench_support.h"

using namespace fractrain;
using namespace fractrain::bench;

namespace {

struct Times {
  double forward = 0, backward = 0;
};

// Median forward and backward times of layer.forward_relu(x, residual) with the kernels on or off.
Times time_layer(SyncBatchNorm2d& layer, bool fused, const at::Tensor& x, const at::Tensor& residual,
                 const at::Tensor& dy, int reps) {
  layer.set_fused_kernels(fused);
  std::vector<double> forward, backward;
  for (int r = 0; r <= reps; ++r) {
    const at::Tensor input = x.detach().requires_grad_();
    const at::Tensor res = residual.defined() ? residual.detach().requires_grad_() : at::Tensor();
    const auto start = std::chrono::steady_clock::now();
    const at::Tensor y = layer.forward_relu(input, res);
    const auto middle = std::chrono::steady_clock::now();
    y.backward(dy);
    const auto end = std::chrono::steady_clock::now();
    if (r == 0) continue;  // warm-up
    forward.push_back(std::chrono::duration<double>(middle - start).count());
    backward.push_back(std::chrono::duration<double>(end - middle).count());
  }
  return {median(forward) * 1e3, median(backward) * 1e3};
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 15;
  int64_t batch = 128;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--threads") threads = std::stoi(argv[i + 1]);
    else if (k == "--reps") reps = std::stoi(argv[i + 1]);
    else if (k == "--batch") batch = std::stoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  torch::manual_seed(0);
  std::printf("batch %lld, %d threads, ms (median of %d)\n", (long long)batch, threads, reps);
  std::printf("%-22s %10s %10s %10s %10s %8s\n", "shape", "torch fwd", "fused fwd", "torch bwd", "fused bwd",
              "ratio");
  for (const auto& [channels, size] : {std::pair<int64_t, int64_t>{16, 32}, {32, 16}, {64, 8}}) {
    for (const bool with_residual : {false, true}) {
      SyncBatchNorm2d layer(channels);
      const at::Tensor x = torch::randn({batch, channels, size, size}) * 2 + 1;
      const at::Tensor residual = with_residual ? torch::rand_like(x) : at::Tensor();
      const at::Tensor dy = torch::randn_like(x);
      const Times plain = time_layer(layer, false, x, residual, dy, reps);
      const Times fused = time_layer(layer, true, x, residual, dy, reps);
      const std::string shape = std::to_string(channels) + "x" + std::to_string(size) + "x" + std::to_string(size) +
                                (with_residual ? " + residual" : "");
      std::printf("%-22s %10.2f %10.2f %10.2f %10.2f %8.3f\n", shape.c_str(), plain.forward, fused.forward,
                  plain.backward, fused.backward, (fused.forward + fused.backward) / (plain.forward + plain.backward));
    }
  }
  return 0;
}
