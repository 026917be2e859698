// The CUDA kernels' per-thread bodies (quant/kernel_threads.h), run on the CPU over their whole grid, against the
// CPU kernels: element-wise quantization bit for bit (nearest and stochastic rounding, one range or a range per
// row, a width per row, noise indices that start inside a Philox tile), DFQ's option gradient within float
// rounding, the running range as the layer keeps it. On a GPU the same functions run under --fmad=false, which
// tests/CMakeLists.txt checks in the compiled PTX where nvcc exists.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>

#include "fractrain/nn/option_gradient.h"
#include "fractrain/quant/kernel_threads.h"
#include "fractrain/quant/quantize_kernel.h"

using namespace fractrain;
using quant_math::QuantizeRowsArgs;

namespace {

// Runs quantize_rows_thread for every thread of the grid, in an order unlike a GPU's (last thread first), so that
// the result cannot depend on the order threads run in.
at::Tensor run_quantize_grid(QuantizeRowsArgs args, const at::Tensor& x) {
  at::Tensor y = torch::full_like(x, std::numeric_limits<float>::quiet_NaN());
  args.x = x.data_ptr<float>();
  args.y = y.data_ptr<float>();
  for (int64_t t = quant_math::quantize_rows_threads(args) - 1; t >= 0; --t) quant_math::quantize_rows_thread(args, t);
  return y;
}

// The CPU kernel on the same rows, ranges, widths and noise.
at::Tensor run_cpu_kernel(const QuantizeRowsArgs& a, const at::Tensor& x) {
  std::vector<kernel::RowQuantParams> params;
  for (int64_t r = 0; r < a.rows; ++r)
    params.push_back(kernel::row_params(a.row_bits ? a.row_bits[r] : a.bits, a.lo[r * a.range_stride],
                                        a.hi[r * a.range_stride], a.snap_zero_point));
  at::Tensor y = torch::empty_like(x);
  const PhiloxStream noise{a.noise_key, a.stochastic ? quant_math::noise_stream_of(a) : 0};
  kernel::quantize_rows(x.data_ptr<float>(), y.data_ptr<float>(), a.rows, a.row_len, params.data(),
                        a.stochastic ? &noise : nullptr, a.noise_first_index);
  return y;
}

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() &&
         std::memcmp(a.data_ptr<float>(), b.data_ptr<float>(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

}  // namespace

TEST(KernelThreads, QuantizationOverTheGridEqualsTheCpuKernelBitForBit) {
  torch::manual_seed(7);
  const int64_t rows = 5, row_len = 300;  // 1500 elements: not a whole number of 64-element tiles
  const at::Tensor x = torch::randn({rows, row_len}) * 3;
  // One range for the tensor, as at::aminmax leaves it in a device buffer.
  const float tensor_lo = x.min().item<float>(), tensor_hi = x.max().item<float>();
  // A range per row (a weight per output channel) and a width per row (DFQ's samples; 0 = full precision).
  const at::Tensor row_lo = std::get<0>(x.min(1)).contiguous(), row_hi = std::get<0>(x.max(1)).contiguous();
  const std::vector<int32_t> row_bits = {4, 0, 8, 2, 6};
  const uint64_t stream = mix_stream(3, 11);

  for (bool stochastic : {false, true}) {
    for (uint64_t first : {uint64_t{0}, uint64_t{37}, uint64_t{64 * 5 + 63}}) {
      for (bool per_row : {false, true}) {
        for (bool snap : {false, true}) {
          QuantizeRowsArgs a;
          a.rows = rows;
          a.row_len = row_len;
          a.lo = per_row ? row_lo.data_ptr<float>() : &tensor_lo;
          a.hi = per_row ? row_hi.data_ptr<float>() : &tensor_hi;
          a.range_stride = per_row ? 1 : 0;
          a.row_bits = per_row ? row_bits.data() : nullptr;
          a.bits = 5;
          a.snap_zero_point = snap;
          a.stochastic = stochastic;
          a.noise_key = 1234;
          a.noise_stream = &stream;
          a.noise_first_index = first;
          const at::Tensor grid = run_quantize_grid(a, x);
          const at::Tensor cpu = run_cpu_kernel(a, x);
          EXPECT_TRUE(bitwise_equal(grid, cpu))
              << "stochastic " << stochastic << " first " << first << " per_row " << per_row << " snap " << snap;
        }
      }
    }
  }
  // The grid covers the elements' Philox blocks: [37, 1537) touches tiles 0..24, 16 blocks each.
  QuantizeRowsArgs a;
  a.rows = rows;
  a.row_len = row_len;
  a.noise_first_index = 37;
  EXPECT_EQ(quant_math::quantize_rows_threads(a), 25 * 16);
  a.rows = 0;
  EXPECT_EQ(quant_math::quantize_rows_threads(a), 0);
}

TEST(KernelThreads, StochasticRoundingDrawsTheStreamItReadsFromMemory) {
  // A CUDA Graph replays the same kernel arguments: the noise stream is read through a pointer, so advancing it in
  // memory changes the noise without a new launch.
  const at::Tensor x = torch::linspace(-1, 1, 640).reshape({2, 320});
  const float lo = -1, hi = 1;
  uint64_t stream = 5;
  QuantizeRowsArgs a;
  a.rows = 2;
  a.row_len = 320;
  a.lo = &lo;
  a.hi = &hi;
  a.bits = 3;
  a.stochastic = true;
  a.noise_key = 9;
  a.noise_stream = &stream;
  const at::Tensor first = run_quantize_grid(a, x);
  EXPECT_TRUE(bitwise_equal(first, run_quantize_grid(a, x)));
  stream = 6;
  const at::Tensor second = run_quantize_grid(a, x);
  EXPECT_FALSE(bitwise_equal(first, second));
  EXPECT_TRUE(bitwise_equal(second, run_cpu_kernel(a, x)));

  // With a step counter in memory instead (train.cuda_graphs), the stream is the layer's of that step: the noise a
  // layer's stream of that step gives, and new noise when the counter moves.
  uint64_t step = 41;
  a.noise_stream = nullptr;
  a.noise_step = &step;
  a.noise_layer = 7;
  const at::Tensor by_step = run_quantize_grid(a, x);
  stream = mix_stream(7, 41);
  QuantizeRowsArgs by_stream = a;
  by_stream.noise_step = nullptr;
  by_stream.noise_stream = &stream;
  EXPECT_TRUE(bitwise_equal(by_step, run_quantize_grid(by_stream, x)));
  EXPECT_TRUE(bitwise_equal(by_step, run_cpu_kernel(a, x)));
  step = 42;
  EXPECT_FALSE(bitwise_equal(by_step, run_quantize_grid(a, x)));
}

TEST(KernelThreads, OptionGradientLanesAddUpToTheCpuKernelsSums) {
  torch::manual_seed(8);
  const int64_t rows = 6, row_len = 1000;
  const at::Tensor x = torch::randn({rows, row_len}), g = torch::randn({rows, row_len});
  const std::vector<int> bits = {3, 4, 6, 0};
  const std::vector<int32_t> bits32(bits.begin(), bits.end());
  const float lo = x.min().item<float>(), hi = x.max().item<float>();
  for (bool snap : {false, true}) {
    const at::Tensor cpu = option_inner_products(x, g, bits, QuantRange{lo, hi}, snap);
    quant_math::OptionGradientArgs a;
    a.x = x.data_ptr<float>();
    a.g = g.data_ptr<float>();
    a.rows = rows;
    a.row_len = row_len;
    a.option_bits = bits32.data();
    a.options = static_cast<int64_t>(bits.size());
    a.lo = &lo;
    a.hi = &hi;
    a.snap_zero_point = snap;
    constexpr int64_t kLanes = 256;  // as the kernel: lanes' partial sums added in a tree
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < a.options; ++k) {
        std::vector<double> partial(kLanes);
        for (int64_t l = 0; l < kLanes; ++l) partial[l] = quant_math::option_gradient_partial(a, r, k, l, kLanes);
        for (int64_t half = kLanes / 2; half > 0; half /= 2)
          for (int64_t l = 0; l < half; ++l) partial[l] += partial[l + half];
        // The CPU kernel sums float spans: within float rounding of the sum of |terms| (1000 terms).
        const double scale = (g[r].abs() * x[r].abs()).sum().item<double>();
        EXPECT_NEAR(partial[0], cpu[r][k].item<double>(), 1e-5 * scale) << "row " << r << " option " << k;
      }
    }
  }
}

TEST(KernelThreads, RunningRangeStartsAtTheFirstBatchThenMovesByMomentum) {
  float lo = 0, span = 0, seen = 0;
  const float batches[3][2] = {{-1.0f, 3.0f}, {-2.0f, 2.0f}, {0.5f, 1.5f}};
  quant_math::RunningRangeArgs a{&lo, &span, &seen, &batches[0][0], &batches[0][1], 0.9f};
  quant_math::running_range_thread(a);
  EXPECT_EQ(lo, -1.0f);
  EXPECT_EQ(span, 4.0f);
  EXPECT_EQ(seen, 1.0f);
  float expected_lo = lo, expected_span = span;
  for (int b = 1; b < 3; ++b) {
    a.batch_lo = &batches[b][0];
    a.batch_hi = &batches[b][1];
    quant_math::running_range_thread(a);
    expected_lo = expected_lo * 0.9f + batches[b][0] * (1.0f - 0.9f);
    expected_span = expected_span * 0.9f + (batches[b][1] - batches[b][0]) * (1.0f - 0.9f);
    EXPECT_EQ(lo, expected_lo);
    EXPECT_EQ(span, expected_span);
  }
}
