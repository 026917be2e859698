// Micro benchmarks: fused quantizer kernels against the tensor-op reference, on activation-sized tensors.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "fractrain/quant/fake_quantize.h"

using namespace fractrain;

namespace {

at::Tensor activation(int64_t batch) { return torch::randn({batch, 16, 32, 32}); }

template <bool Fused, bool Stochastic>
void BM_FakeQuantize(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(1)));
  const at::Tensor x = activation(state.range(0));
  QuantizeOptions o;
  if (Stochastic) {
    o.rounding = Rounding::Stochastic;
    o.noise = PhiloxStream{1, 2};
  }
  for (auto _ : state) {
    const QuantRange r = tensor_range(x);
    at::Tensor q = Fused ? fake_quantize(x, 8, r, o) : reference::fake_quantize(x, 8, r, o);
    benchmark::DoNotOptimize(q.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 4);
}

// The backward-pass path: per-tensor range and stochastic rounding of a gradient, in place (as when the autograd
// engine hands over the only reference to it).
void BM_QuantizeGradientInPlace(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(1)));
  at::Tensor g = activation(state.range(0));
  QuantizeOptions o;
  o.rounding = Rounding::Stochastic;
  o.noise = PhiloxStream{1, 2};
  for (auto _ : state) {
    const QuantRange r = tensor_range(g);
    benchmark::DoNotOptimize(fake_quantize_out(g, 8, r, o, g).data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * g.numel() * 4);
}

}  // namespace

BENCHMARK(BM_QuantizeGradientInPlace)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, true, false)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, false, false)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, true, true)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, false, true)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
