// Integer execution inside QConv2d and QLinear (precision.execution = integer): the same layer run simulated on
// the same quantization (snapped zero points, the error pass's weight per input channel) gives the same
// results within the FP32 tolerance of test_integer_conv.cpp (1e-4 of the largest magnitude); passes that cannot
// run on integer codes fall back to exactly the simulated computation and are logged.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/integer/integer_support.h"
#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"
#include "integer_test_support.h"

namespace fractrain {
namespace {

QuantizerSettings settings_for(ExecutionMode mode) {
  QuantizerSettings s;
  s.noise_seed = 21;
  s.snap_zero_point = true;
  s.error_weight_ranges = ErrorWeightRanges::PerInputChannel;
  s.execution = mode;
  return s;
}

struct LayerRun {
  at::Tensor y, dx, dw, db;
};

// The two layers of a comparison: the same weights and a random bias, one under integer execution, one simulated.
template <typename Layer>
void pair_up(Layer& integer, Layer& simulated) {
  {
    torch::NoGradGuard no_grad;
    simulated.weight().copy_(integer.weight());
    simulated.bias().copy_(integer.bias().normal_());
  }
  integer.set_quantizer_settings(settings_for(ExecutionMode::Integer));
  simulated.set_quantizer_settings(settings_for(ExecutionMode::Simulated));
}

template <typename Layer>
LayerRun run(Layer& layer, const at::Tensor& x_value, const at::Tensor& g, const LayerPrecision& p) {
  layer.zero_grad();
  at::Tensor x = x_value.clone().requires_grad_(true);
  at::Tensor y = layer.forward(x, p, 5);
  y.backward(g);
  return {y.detach(), x.grad(), layer.weight().grad().clone(), layer.bias().grad().clone()};
}

void expect_close(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = b.abs().max().item<double>();
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-4 * scale) << what;
}

template <typename Layer>
void expect_same_run(Layer& integer, Layer& simulated, const at::Tensor& x, const at::Tensor& g,
                     const LayerPrecision& p, const std::string& what) {
  const LayerRun a = run(integer, x, g, p), b = run(simulated, x, g, p);
  expect_close(a.y, b.y, what + " y");
  expect_close(a.dx, b.dx, what + " dx");
  expect_close(a.dw, b.dw, what + " dw");
  expect_close(a.db, b.db, what + " db");
}

std::vector<int> widths(int64_t n, std::initializer_list<int> cycle) {
  std::vector<int> w;
  for (int64_t i = 0; i < n; ++i) w.push_back(*(cycle.begin() + i % static_cast<int64_t>(cycle.size())));
  return w;
}

// FW-8/BW-8, FW-4/BW-6 and DFQ's per-sample widths (the weight gradient sums each group of samples with equal
// widths): each run of the integer layer matches the simulated one, and all three passes ran on integers.
void expect_integer_runs_match(QConv2d& integer, QConv2d& simulated, const at::Tensor& x, const at::Tensor& g,
                               const std::string& what) {
  expect_same_run(integer, simulated, x, g, LayerPrecision::uniform(Precision::fw_bw(8, 8)), what + " FW8/BW8");
  expect_same_run(integer, simulated, x, g, LayerPrecision::uniform(Precision::fw_bw(4, 6)), what + " FW4/BW6");
  expect_same_run(integer, simulated, x, g,
                  LayerPrecision::per_sample(4, widths(4, {3, 4, 6}), widths(4, {6, 8})), what + " per sample");
  const ExecutionCounts counts = integer.execution_counts();
  EXPECT_EQ(counts.forward.simulated + counts.error_backward.simulated + counts.weight_gradient.simulated, 0)
      << counts.last_fallback;
  EXPECT_EQ(counts.forward.integer, 3);
  EXPECT_EQ(counts.error_backward.integer, 3);
  EXPECT_EQ(counts.weight_gradient.integer, 3);
}

TEST(IntegerLayers, ConvMatchesSimulatedOnTheSameQuantization) {
  ASSUME_INTEGER_SUPPORT();
  for (int64_t stride : {1, 2}) {
    for (int64_t kernel : {1, 3}) {
      torch::manual_seed(8);
      QConv2dOptions o = QConv2dOptions::same(5, 6, kernel, stride);
      o.bias = true;
      QConv2d integer(o), simulated(o);
      pair_up(integer, simulated);
      const at::Tensor x = torch::relu(torch::randn({4, 5, 9, 9}));
      const int64_t out = (9 + 2 * (kernel / 2) - kernel) / stride + 1;
      const at::Tensor g = torch::randn({4, 6, out, out});
      const std::string what = "k" + std::to_string(kernel) + " s" + std::to_string(stride);
      expect_integer_runs_match(integer, simulated, x, g, what);
    }
  }
}

TEST(IntegerLayers, LinearMatchesSimulatedOnTheSameQuantization) {
  ASSUME_INTEGER_SUPPORT();
  torch::manual_seed(9);
  QLinear integer(12, 5), simulated(12, 5);
  {
    torch::NoGradGuard no_grad;
    simulated.weight().copy_(integer.weight());
    simulated.bias().copy_(integer.bias());
  }
  integer.set_quantizer_settings(settings_for(ExecutionMode::Integer));
  simulated.set_quantizer_settings(settings_for(ExecutionMode::Simulated));
  const auto p = LayerPrecision::uniform(Precision::fw_bw(8, 8));
  expect_same_run(integer, simulated, torch::randn({6, 12}), torch::randn({6, 5}), p, "[N, in]");
  expect_same_run(integer, simulated, torch::randn({3, 4, 12}), torch::randn({3, 4, 5}), p, "[N, T, in]");
  EXPECT_EQ(integer.execution_counts().error_backward.integer, 2);
}

// A 12-bit gradient has no int8 codes: the layer's error backward and weight gradient run simulated, exactly as a
// simulated layer does, and say so; the forward stays integer.
TEST(IntegerLayers, WideGradientFallsBackForTheBackwardPassesOnly) {
  ASSUME_INTEGER_SUPPORT();
  torch::manual_seed(10);
  QConv2dOptions o = QConv2dOptions::same(3, 4, 3, 1);
  o.bias = true;
  QConv2d integer(o), simulated(o);
  {
    torch::NoGradGuard no_grad;
    simulated.weight().copy_(integer.weight());
    simulated.bias().copy_(integer.bias());
  }
  integer.set_quantizer_settings(settings_for(ExecutionMode::Integer));
  simulated.set_quantizer_settings(settings_for(ExecutionMode::Simulated));
  const at::Tensor x = torch::randn({2, 3, 6, 6}), g = torch::randn({2, 4, 6, 6});
  const auto p = LayerPrecision::uniform(Precision::fw_bw(8, 12));
  const LayerRun a = run(integer, x, g, p), b = run(simulated, x, g, p);
  EXPECT_TRUE(torch::equal(a.dx, b.dx));
  EXPECT_TRUE(torch::equal(a.dw, b.dw));
  EXPECT_TRUE(torch::equal(a.db, b.db));
  expect_close(a.y, b.y, "forward");
  const ExecutionCounts counts = integer.execution_counts();
  EXPECT_EQ(counts.forward.integer, 1);
  EXPECT_EQ(counts.error_backward.simulated, 1);
  EXPECT_EQ(counts.weight_gradient.simulated, 1);
  EXPECT_NE(counts.last_fallback.find("12-bit gradient"), std::string::npos) << counts.last_fallback;
}

// DFQ's per-sample widths where some samples have 12-bit gradients (cifar-release's 6/12 option): those samples'
// backward runs simulated, the others' on integers, in one pass split by sample, and the whole equals the simulated
// layer (each sample quantized with its own noise, as in the whole batch). Wide samples first, alone and in a run;
// with more than a quarter of the batch wide the backward falls back whole (the split would cost more).
TEST(IntegerLayers, MixedGradientWidthsSplitTheBackwardBySample) {
  ASSUME_INTEGER_SUPPORT();
  for (int64_t stride : {1, 2}) {
    torch::manual_seed(14);
    QConv2dOptions o = QConv2dOptions::same(5, 6, 3, stride);
    o.bias = true;
    QConv2d integer(o), simulated(o);
    pair_up(integer, simulated);
    const at::Tensor x = torch::relu(torch::randn({12, 5, 9, 9}));
    const int64_t out = (9 + 2 - 3) / stride + 1;
    const at::Tensor g = torch::randn({12, 6, out, out});
    const std::vector<int> act = widths(12, {3, 4, 6});
    const std::string what = "s" + std::to_string(stride);
    const LayerPrecision mixed = LayerPrecision::per_sample(4, act, {12, 6, 8, 6, 6, 8, 12, 12, 6, 8, 6, 6});
    expect_same_run(integer, simulated, x, g, mixed, what + " mixed");
    EXPECT_EQ(integer.integer_passes(mixed)[0], "integer");
    EXPECT_EQ(integer.integer_passes(mixed)[2].rfind("integer, split by sample (3 of 12 samples simulated: a 12-bit", 0),
              0u)
        << integer.integer_passes(mixed)[2];
    ExecutionCounts counts = integer.execution_counts();
    EXPECT_EQ(counts.error_backward.split, 1) << what;
    EXPECT_EQ(counts.weight_gradient.split, 1) << what;
    EXPECT_EQ(counts.error_backward.simulated + counts.weight_gradient.simulated, 0) << what;
    EXPECT_NE(counts.last_fallback.find("3 of 12 samples: a 12-bit gradient"), std::string::npos)
        << counts.last_fallback;
    const LayerPrecision third = LayerPrecision::per_sample(4, act, {12, 6, 8, 6, 6, 8, 12, 12, 6, 8, 6, 12});
    expect_same_run(integer, simulated, x, g, third, what + " a third");
    EXPECT_EQ(integer.integer_passes(third)[1].rfind("simulated (a 12-bit gradient", 0), 0u)
        << integer.integer_passes(third)[1];
    counts = integer.execution_counts();
    EXPECT_EQ(counts.error_backward.simulated, 1) << what;
    EXPECT_EQ(counts.error_backward.split, 1) << what;
  }
  // A linear layer over tokens ([N, T, in], channels last).
  torch::manual_seed(15);
  QLinear integer(12, 5), simulated(12, 5);
  pair_up(integer, simulated);
  expect_same_run(integer, simulated, torch::randn({4, 3, 12}), torch::randn({4, 3, 5}),
                  LayerPrecision::per_sample(4, {8, 6, 8, 4}, {8, 8, 6, 12}), "linear mixed");
  EXPECT_EQ(integer.execution_counts().weight_gradient.split, 1);
}

// Depthwise convolutions (MobileNetV2's) run all three passes on integers (src/integer/integer_depthwise.h), their
// error pass on the forward's per-channel weight ranges, as the simulated grouped quantization has them. A 1x1
// depthwise filter falls back.
TEST(IntegerLayers, DepthwiseConvMatchesSimulatedOnTheSameQuantization) {
  ASSUME_INTEGER_SUPPORT();
  for (int64_t stride : {1, 2}) {
    torch::manual_seed(12);
    QConv2dOptions o = QConv2dOptions::same(6, 6, 3, stride, 6);
    o.bias = true;
    QConv2d integer(o), simulated(o);
    pair_up(integer, simulated);
    const at::Tensor x = torch::relu(torch::randn({4, 6, 9, 9}));
    const int64_t out = (9 + 2 - 3) / stride + 1;
    const at::Tensor g = torch::randn({4, 6, out, out});
    const std::string what = "depthwise s" + std::to_string(stride);
    expect_integer_runs_match(integer, simulated, x, g, what);
    // MobileNetV2's depthwise precision, FW-8/BW-16: the backward falls back to exactly the simulated gradients
    // (its error weight grouped as the layer is).
    const LayerRun a = run(integer, x, g, LayerPrecision::uniform(Precision::fw_bw(8, 16)));
    const LayerRun b = run(simulated, x, g, LayerPrecision::uniform(Precision::fw_bw(8, 16)));
    EXPECT_TRUE(torch::equal(a.dx, b.dx)) << what;
    EXPECT_TRUE(torch::equal(a.dw, b.dw)) << what;
    expect_close(a.y, b.y, what + " FW8/BW16 forward");
    EXPECT_EQ(integer.execution_counts().error_backward.simulated, 1);
  }
  // A 1x1 depthwise filter is one value per channel: a range of width 0 away from 0 has no integer zero point, so
  // the layer runs simulated and says why instead of failing the run.
  QConv2d pointwise(QConv2dOptions::same(3, 3, 1, 1, 3));
  pointwise.set_quantizer_settings(settings_for(ExecutionMode::Integer));
  {
    torch::NoGradGuard no_grad;
    pointwise.weight().fill_(0.5);
  }
  pointwise.forward(torch::randn({2, 3, 4, 4}), LayerPrecision::uniform(Precision::fw_bw(8, 8)), 0);
  EXPECT_EQ(pointwise.execution_counts().forward.simulated, 1);
  EXPECT_NE(pointwise.execution_counts().last_fallback.find("zero point"), std::string::npos)
      << pointwise.execution_counts().last_fallback;
}

// Groupings other than dense and depthwise have no integer passes: the layer runs simulated and says why.
TEST(IntegerLayers, GroupedConvFallsBackWithAReason) {
  QConv2d grouped(QConv2dOptions::same(4, 4, 3, 1, 2));
  grouped.set_quantizer_settings(settings_for(ExecutionMode::Integer));
  grouped.forward(torch::randn({2, 4, 5, 5}), LayerPrecision::uniform(Precision::fw_bw(8, 8)), 0);
  const ExecutionCounts counts = grouped.execution_counts();
  EXPECT_EQ(counts.forward.simulated, 1);
  EXPECT_FALSE(counts.last_fallback.empty());
  if (integer_support().available) {
    EXPECT_NE(counts.last_fallback.find("grouped convolutions other than depthwise"), std::string::npos)
        << counts.last_fallback;
  }
}

// On a CPU without 8-bit dot products (assumed here on every CPU: plain loops reporting products exact up to 7-bit
// unsigned codes, as such a CPU's oneDNN kernels are) a dense layer runs on integers what that CPU adds exactly: up
// to 7-bit activations and gradients all three passes; an 8-bit gradient sends the error backward alone to the
// simulated path, an 8-bit activation the whole layer; each fallback says why, and gives exactly the simulated
// layer's result. Depthwise convolutions, on loops of their own, still take 8 bits.
TEST(IntegerLayers, CpuWithoutDotProductsRunsWhatItAddsExactly) {
  const AssumeIntegerSupportForTests seven_bits(AssumeIntegerSupportForTests::Products::PlainLoopsUpTo7Bits);
  ASSERT_EQ(integer_support().max_unsigned_bits, 7);
  torch::manual_seed(14);
  QConv2dOptions o = QConv2dOptions::same(5, 6, 3, 2);
  o.bias = true;
  const at::Tensor x = torch::relu(torch::randn({4, 5, 9, 9})), g = torch::randn({4, 6, 5, 5});
  {
    QConv2d integer(o), simulated(o);
    pair_up(integer, simulated);
    expect_same_run(integer, simulated, x, g, LayerPrecision::uniform(Precision::fw_bw(4, 6)), "FW4/BW6");
    expect_same_run(integer, simulated, x, g, LayerPrecision::per_sample(4, widths(4, {3, 7}), widths(4, {6, 7})),
                    "per sample up to 7 bits");
    const ExecutionCounts counts = integer.execution_counts();
    EXPECT_EQ(counts.forward.integer + counts.error_backward.integer + counts.weight_gradient.integer, 6)
        << counts.last_fallback;
  }
  {
    QConv2d integer(o), simulated(o);
    pair_up(integer, simulated);
    const auto p = LayerPrecision::uniform(Precision::fw_bw(4, 8));
    EXPECT_EQ(integer.integer_passes(p)[0], "integer");
    EXPECT_NE(integer.integer_passes(p)[1].find("simulated (an 8-bit gradient"), std::string::npos)
        << integer.integer_passes(p)[1];
    EXPECT_EQ(integer.integer_passes(p)[2], "integer");
    const LayerRun a = run(integer, x, g, p), b = run(simulated, x, g, p);
    EXPECT_TRUE(torch::equal(a.dx, b.dx));
    expect_close(a.y, b.y, "FW4/BW8 forward");
    expect_close(a.dw, b.dw, "FW4/BW8 dw");
    expect_close(a.db, b.db, "FW4/BW8 db");
    const ExecutionCounts counts = integer.execution_counts();
    EXPECT_EQ(counts.forward.integer, 1);
    EXPECT_EQ(counts.weight_gradient.integer, 1);
    EXPECT_EQ(counts.error_backward.simulated, 1);
    EXPECT_NE(counts.last_fallback.find("an 8-bit gradient: this CPU has no 8-bit dot products"), std::string::npos)
        << counts.last_fallback;
  }
  {
    QConv2d integer(o), simulated(o);
    pair_up(integer, simulated);
    const auto p = LayerPrecision::uniform(Precision::fw_bw(8, 6));
    EXPECT_NE(integer.integer_passes(p)[0].find("simulated (an 8-bit activation"), std::string::npos);
    const LayerRun a = run(integer, x, g, p), b = run(simulated, x, g, p);
    EXPECT_TRUE(torch::equal(a.y, b.y));
    EXPECT_TRUE(torch::equal(a.dx, b.dx));
    EXPECT_TRUE(torch::equal(a.dw, b.dw));
    const ExecutionCounts counts = integer.execution_counts();
    EXPECT_EQ(counts.forward.simulated + counts.error_backward.simulated + counts.weight_gradient.simulated, 3);
    EXPECT_NE(counts.last_fallback.find("an 8-bit activation"), std::string::npos) << counts.last_fallback;
  }
  {
    QConv2dOptions d = QConv2dOptions::same(6, 6, 3, 1, 6);
    d.bias = true;
    QConv2d integer(d), simulated(d);
    pair_up(integer, simulated);
    expect_same_run(integer, simulated, torch::relu(torch::randn({4, 6, 9, 9})), torch::randn({4, 6, 9, 9}),
                    LayerPrecision::uniform(Precision::fw_bw(8, 8)), "depthwise FW8/BW8");
    const ExecutionCounts counts = integer.execution_counts();
    EXPECT_EQ(counts.forward.integer + counts.error_backward.integer + counts.weight_gradient.integer, 3)
        << counts.last_fallback;
  }
}

}  // namespace
}  // namespace fractrain
