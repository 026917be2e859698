// Micro benchmarks: fused quantizer kernels against the tensor-op reference, on activation-sized tensors.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "fractrain/nn/option_gradient.h"
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

// DFQ mixed mode's backward: the K inner products <g_n, Q_k(x_n)> of the cifar-release options, one fused pass
// against the tensor-op reference. For scale: a quantized 8-bit copy of the same tensor is one pass.
template <bool Fused>
void BM_OptionInnerProducts(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(1)));
  const at::Tensor x = activation(state.range(0)), g = activation(state.range(0));
  const std::vector<int> bits = {3, 4, 4, 6, 6};
  for (auto _ : state) {
    const QuantRange r = tensor_range(x);
    at::Tensor p = Fused ? option_inner_products(x, g, bits, r, false)
                         : reference::option_inner_products(x, g, bits, r, false);
    benchmark::DoNotOptimize(p.data_ptr());
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * 8);
}

BENCHMARK_TEMPLATE(BM_OptionInnerProducts, true)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_OptionInnerProducts, false)->Args({128, 1})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_QuantizeGradientInPlace)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, true, false)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, false, false)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, true, true)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_FakeQuantize, false, true)->Args({128, 1})->Args({128, 2})->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
