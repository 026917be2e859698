// DFQ's masked execution (models/gated_block.h), the fixed-shape form of mixed execution that keeps the gates'
// decisions on the device: its parts (BatchNorm and ranges over the running samples, the option gradient on the
// device path) and the whole block, in training, against mixed execution, which never computes a skipped sample.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>

#include "fractrain/models/gated_model.h"
#include "fractrain/models/mobilenet_v2.h"
#include "fractrain/nn/batch_norm.h"
#include "fractrain/nn/option_gradient.h"
#include "fractrain/quant/device_quantize.h"
#include "fractrain/train/data_parallel.h"
#include "dfq_test_support.h"
#include "test_support.h"
#include "thread_communicator.h"

using namespace fractrain;

using test_support::CostRecorder;
using test_support::fixed_decision;
using test_support::ReportedCall;
using test_support::trained_block;

namespace {

const std::vector<float> kRuns{1, 0, 1, 1, 0, 1};

at::Tensor running_index(const std::vector<float>& runs) {
  std::vector<int64_t> index;
  for (size_t n = 0; n < runs.size(); ++n)
    if (runs[n] > 0) index.push_back(static_cast<int64_t>(n));
  return torch::tensor(index, torch::kLong);
}

// Float sums over the same values in another order (masked statistics sum every sample, multiplied by 0 or 1;
// torch's BatchNorm and a compact batch sum only the running ones): a few float ulps of the values' scale.
constexpr double kOrderTolerance = 2e-5;

}  // namespace

TEST(MaskedBatchNorm, NormalisesWithTheRunningSamplesStatisticsAsIfAlone) {
  torch::manual_seed(3);
  SyncBatchNorm2d masked(3), alone(3);
  masked.train();
  alone.train();
  const at::Tensor x = (torch::randn({6, 3, 4, 5}) * 2 + 1).requires_grad_();
  const at::Tensor runs = torch::tensor(kRuns);
  const at::Tensor index = running_index(kRuns);
  const at::Tensor upstream = torch::randn({6, 3, 4, 5}) * runs.view({-1, 1, 1, 1});  // skipped: no gradient

  const at::Tensor y = masked.forward(x, runs);
  (upstream * y).sum().backward();
  const at::Tensor x_alone = x.detach().index_select(0, index).requires_grad_();
  const at::Tensor y_alone = alone.forward(x_alone);
  (upstream.index_select(0, index) * y_alone).sum().backward();

  EXPECT_TRUE(torch::allclose(y.detach().index_select(0, index), y_alone.detach(), kOrderTolerance, kOrderTolerance));
  EXPECT_TRUE(torch::allclose(x.grad().index_select(0, index), x_alone.grad(), kOrderTolerance, kOrderTolerance));
  // A skipped sample's gradient is exactly 0: none reaches it through the statistics.
  EXPECT_TRUE(torch::equal(x.grad().select(0, 1), torch::zeros({3, 4, 5})));
  EXPECT_TRUE(torch::equal(x.grad().select(0, 4), torch::zeros({3, 4, 5})));
  EXPECT_TRUE(torch::allclose(masked.weight.grad(), alone.weight.grad(), kOrderTolerance, kOrderTolerance));
  EXPECT_TRUE(torch::allclose(masked.bias.grad(), alone.bias.grad(), kOrderTolerance, kOrderTolerance));
  EXPECT_TRUE(torch::allclose(masked.running_mean, alone.running_mean, kOrderTolerance, kOrderTolerance));
  EXPECT_TRUE(torch::allclose(masked.running_var, alone.running_var, kOrderTolerance, kOrderTolerance));
  EXPECT_EQ(masked.num_batches_tracked.item<int64_t>(), 1);
}

TEST(MaskedBatchNorm, NoRunningSampleLeavesTheRunningStatisticsAlone) {
  SyncBatchNorm2d bn(2);
  bn.train();
  const at::Tensor y = bn.forward(torch::randn({3, 2, 4, 4}), torch::zeros({3}));
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  EXPECT_TRUE(torch::equal(bn.running_mean, torch::zeros({2})));
  EXPECT_TRUE(torch::equal(bn.running_var, torch::ones({2})));
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 0);
}

TEST(MaskedBatchNorm, RefusesFlagsThatAreNotOnePerSample) {
  SyncBatchNorm2d bn(2);
  bn.train();
  EXPECT_THROW(bn.forward(torch::randn({3, 2, 4, 4}), torch::ones({4})), Error);
}

TEST(RunningSamplesRange, IsTheRangeOfTheRunningSamplesAlone) {
  torch::manual_seed(4);
  const at::Tensor x = torch::randn({6, 2, 3});
  x[1][0][0] = 100.0f;  // extremes in skipped samples change nothing
  x[4][1][2] = -100.0f;
  const at::Tensor range = device_quant::range_of_running(x, torch::tensor(kRuns));
  EXPECT_TRUE(torch::equal(range, device_quant::range_of(x.index_select(0, running_index(kRuns)))));
  EXPECT_TRUE(torch::equal(device_quant::range_of_running(x, torch::zeros({6})), torch::zeros({2})));
  EXPECT_THROW(device_quant::range_of_running(x, torch::ones({5})), Error);
}

// The device path's inner products (the CUDA kernel's lanes and tree, run on the CPU) against the CPU kernel:
// both sum exact products of floats, in double per lane or in float spans, so they agree to float rounding.
TEST(DeviceOptionGradient, EqualsTheCpuKernelsInnerProducts) {
  torch::manual_seed(5);
  const at::Tensor x = torch::rand({5, 3, 7, 9}) * 3 - 1, g = torch::randn({5, 3, 7, 9});
  const std::vector<int> bits{2, 4, 0, 8};
  for (bool snap : {false, true}) {
    const QuantRange range = tensor_range(x);
    const at::Tensor host = option_inner_products(x, g, bits, range, snap);
    const at::Tensor device = device_quant::option_inner_products(
        x, g, device_quant::widths_tensor(bits, x), device_quant::range_of(x), snap);
    EXPECT_TRUE(torch::allclose(device, host, 1e-5, 1e-4)) << "snap " << snap << "\n" << device - host;
  }
}

namespace {

double relative_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).norm().item<double>() / std::max(1e-30, b.norm().item<double>());
}

// `masked` agrees with `mixed`: element by element to float summation order, or, where stochastic rounding comes
// in (`other_draw` defined), no further from it than mixed execution with other noise (`other_draw`) is,
// up to a factor 3 for the spread of either estimate (relative L2 norms; both differences are those of two
// independent noise draws, so their expected sizes are equal).
::testing::AssertionResult agree(const at::Tensor& masked, const at::Tensor& mixed, const at::Tensor& other_draw) {
  const double largest = (masked - mixed).abs().max().item<double>();
  // Gradients computed before any quantized one (a last BatchNorm's) carry no noise in either execution.
  if (torch::allclose(masked, mixed, kOrderTolerance, kOrderTolerance)) return ::testing::AssertionSuccess();
  if (!other_draw.defined()) return ::testing::AssertionFailure() << "max |difference| " << largest;
  const double apart = relative_difference(masked, mixed), noise = relative_difference(other_draw, mixed);
  if (apart <= 3.0 * noise + 1e-7) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative L2 difference " << apart << " against " << noise
                                       << " between two draws of mixed execution (max |difference| " << largest
                                       << ")";
}

// What one execution gives: the output, the input's and the gate's gradients, and the block's parameters' gradients.
struct Executed {
  at::Tensor y, dx, dp;
  std::map<std::string, at::Tensor> parameter_grads;
};

// Runs `choices` through a block in masked and (on an identical block) mixed execution, in training, and
// compares what each sample gets: outputs, input gradients, the gate's gradient, parameter gradients and the
// running statistics, and what the cost meter is charged. Outputs and statistics agree to float summation order,
// and gradients too when the options' gradients are 32 bits wide. Narrower gradients (`stochastic`) round with
// noise that masked execution draws by position in the whole batch, mixed among the running samples: there the
// gradients must agree as well as two draws of mixed execution do.
template <class Block, class... Args>
void expect_masked_equals_mixed(const OptionSet& options, const std::vector<int64_t>& choices, int64_t in_channels,
                                std::vector<int64_t> output, bool stochastic, Args... args) {
  auto masked_block = trained_block<Block>(in_channels, args...);
  auto mixed_block = trained_block<Block>(in_channels, args...);
  CostRecorder masked_cost, mixed_cost;
  for (auto& l : masked_block->layers()) l->set_cost_observer(&masked_cost);
  for (auto& l : mixed_block->layers()) l->set_cost_observer(&mixed_cost);
  const auto n = static_cast<int64_t>(choices.size());
  torch::manual_seed(6);
  // Samples that skip get 5 times the others' values: any range or statistic that took them in would differ.
  std::vector<float> scale;
  for (int64_t c : choices) scale.push_back(options.at(static_cast<size_t>(c)).skip ? 5.0f : 1.0f);
  const at::Tensor x = torch::rand({n, in_channels, 6, 6}) * torch::tensor(scale).view({-1, 1, 1, 1});
  output.insert(output.begin(), n);
  const at::Tensor upstream = torch::randn(output);
  const OptionTables tables = OptionTables::build(options, x.device());

  auto run = [&](Block& block, bool masked, uint64_t noise_step) {
    block.train();
    const GateDecision decision = fixed_decision(choices, static_cast<int64_t>(options.size()));
    const at::Tensor input = x.clone().requires_grad_();
    GatedBlockRun how{options, noise_step, false};
    how.tables = &tables;
    const at::Tensor y = masked ? run_gated_block_masked(block, input, decision, how)
                                : run_gated_block_mixed(block, input, decision, how);
    (upstream * y).sum().backward();
    Executed e{y.detach(), input.grad(), decision.probabilities.grad(), {}};
    for (const auto& p : block.named_parameters()) e.parameter_grads[p.key()] = p.value().grad();
    return e;
  };
  const Executed masked = run(*masked_block, true, 7), mixed = run(*mixed_block, false, 7);
  Executed other;
  if (stochastic) other = run(*trained_block<Block>(in_channels, args...), false, 8);

  EXPECT_TRUE(agree(masked.y, mixed.y, {})) << "outputs";
  EXPECT_TRUE(agree(masked.dx, mixed.dx, other.dx)) << "input gradients";
  ASSERT_TRUE(masked.dp.defined());
  EXPECT_GT(masked.dp.abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(agree(masked.dp, mixed.dp, other.dp)) << "the gate's gradients";
  for (const auto& [name, grad] : masked.parameter_grads) {
    ASSERT_TRUE(grad.defined()) << name;
    EXPECT_TRUE(agree(grad, mixed.parameter_grads.at(name), stochastic ? other.parameter_grads.at(name) : at::Tensor()))
        << name;
  }
  const auto masked_buffers = masked_block->named_buffers(), mixed_buffers = mixed_block->named_buffers();
  for (const auto& b : masked_buffers)
    EXPECT_TRUE(torch::allclose(b.value().to(torch::kDouble), mixed_buffers[b.key()].to(torch::kDouble),
                                kOrderTolerance, kOrderTolerance))
        << b.key() << ": " << b.value() << " against " << mixed_buffers[b.key()];

  // Charged as mixed execution: the running samples at their options. Masked execution counts them per option on
  // the device, so it reports them in option order and per sample, mixed execution in sample order and a fixed
  // layer's as one uniform precision.
  const auto in_order = [](const ReportedCall& call) {
    std::vector<Precision> samples = call.samples;
    if (samples.size() == 1) samples.assign(static_cast<size_t>(call.batch), samples.front());
    std::sort(samples.begin(), samples.end(), [](const Precision& a, const Precision& b) {
      return std::tie(a.act, a.weight, a.grad) < std::tie(b.act, b.weight, b.grad);
    });
    return samples;
  };
  ASSERT_EQ(masked_cost.calls.size(), mixed_cost.calls.size());
  for (size_t i = 0; i < masked_cost.calls.size(); ++i) {
    EXPECT_EQ(masked_cost.calls[i].layer, mixed_cost.calls[i].layer);
    EXPECT_EQ(masked_cost.calls[i].batch, mixed_cost.calls[i].batch);
    EXPECT_EQ(in_order(masked_cost.calls[i]), in_order(mixed_cost.calls[i]));
  }
}

}  // namespace

// 32-bit gradients in every option (an option's gradient cannot be FP32): their rounding, below a float's
// precision, leaves the two executions differing by float summation order alone.
TEST(DfqMaskedExecution, EqualsMixedExecutionInTrainingWithFp32Gradients) {
  const OptionSet options = OptionSet::parse("skip,2/32,4/32,8/32", 4);
  expect_masked_equals_mixed<BasicBlock>(options, {1, 0, 3, 2, 0, 1}, 4, {4, 6, 6}, false, 4, 1);
  // A projection shortcut (never skipped).
  expect_masked_equals_mixed<BasicBlock>(options, {1, 2, 3, 2, 1, 1}, 4, {8, 3, 3}, false, 8, 2);
}

// Quantized gradients round stochastically with noise drawn by position in the batch, which differs between the
// two executions.
TEST(DfqMaskedExecution, AgreesWithMixedExecutionAsTwoDrawsOfItsGradientNoiseDo) {
  const OptionSet options = OptionSet::parse("cifar-paper", 0);  // skip, 2/6, 3/6, 4/6, 4/12, 6/8, 6/12
  expect_masked_equals_mixed<BasicBlock>(options, {1, 0, 5, 3, 0, 6}, 4, {4, 6, 6}, true, 4, 1);
}

// MobileNetV2's depthwise conv runs at its fixed FW-8/BW-16 whatever the option: under masked execution its
// ranges too leave the skipped samples out. Its 16-bit gradient rounds stochastically.
TEST(DfqMaskedExecution, MobileNetBlocksFixedLayersLeaveSkippedSamplesOut) {
  const OptionSet options = OptionSet::parse("skip,4/32,8/32", 8);
  expect_masked_equals_mixed<InvertedResidual>(options, {1, 0, 2, 0, 1, 1}, 8, {8, 6, 6}, true, 8, 1, 2);
}

// A gated ResNet built for masked execution: its decisions and outputs are mixed execution's, and every parameter,
// the gate's included, gets a gradient.
TEST(DfqMaskedExecution, AGatedResNetRunsAsInMixedExecution) {
  const ModelInputSpec input{1, 12, 12, 10};
  const OptionSet options = OptionSet::parse("skip,3/32,6/32", 4);
  auto build = [&](GateExecution execution) {
    torch::manual_seed(1);
    auto model = std::make_shared<GatedResNet>(options, execution, cifar_resnet_layout(8), input);
    model->train();
    return model;
  };
  auto masked = build(GateExecution::Masked), mixed = build(GateExecution::Mixed);
  torch::manual_seed(2);
  const at::Tensor images = torch::rand({8, 1, 12, 12});
  const PrecisionPlan plan = PrecisionPlan::uniform(Precision::fw_bw(8, 8));
  const ForwardResult out_masked = masked->run(images, plan);
  const ForwardResult out_mixed = mixed->run(images, plan);
  ASSERT_EQ(out_masked.decisions.size(), out_mixed.decisions.size());
  for (size_t b = 0; b < out_masked.decisions.size(); ++b)
    EXPECT_TRUE(torch::equal(out_masked.decisions[b].options, out_mixed.decisions[b].options)) << "block " << b;
  // Summation orders differ (BatchNorm over the running samples, convolutions over the whole batch), which can
  // move an activation across a quantization level of a later layer: the logits agree within a fraction of an
  // 8-bit step rather than to summation order.
  EXPECT_LT(relative_difference(out_masked.output, out_mixed.output), 1e-3);
  out_masked.output.pow(2).sum().backward();
  for (const auto& p : masked->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

// Its ranges and BatchNorm statistics over the running samples are not agreed across ranks: a data-parallel DFQ
// run with masked execution is refused before it starts, with the setting that works.
TEST(DfqMaskedExecution, DataParallelRunsAreRefusedWithTheFix) {
  RunConfig config;
  config.precision.mode = PrecisionMode::Dfq;
  config.dfq.execution = GateExecution::Masked;
  config.train.batch_size = 8;
  const auto comms = test_support::make_thread_communicators(2);
  EXPECT_CONTAINS(test_support::error_of([&] { DataParallel(comms[0], nullptr, config); }),
                  "use dfq.execution = \"mixed\"");
  config.dfq.execution = GateExecution::Mixed;
  EXPECT_NO_THROW(DataParallel(comms[0], nullptr, config));
}
