// The fused BatchNorm + ReLU (+ residual) op against BatchNorm, add and ReLU in float64, and the layer and model
// switch (train.fused_batch_norm) against torch's ops.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <optional>
#include <vector>

#include "dfq_test_support.h"
#include "fractrain/models/gated_block.h"
#include "fractrain/models/resnet.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/nn/batch_norm.h"
#include "fractrain/nn/fused_batch_norm.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/quant/range_memo.h"

namespace fractrain {
namespace {

constexpr double kEps = 1e-5;

struct Case {
  std::vector<int64_t> sizes;
  bool residual, affine, scaled = false;
};

// Planes of 1600 (two chunks of the backward's sums, the second short), 49 (lane loop tail), 5 and 1 values;
// inputs with means of a few standard deviations, as after a convolution of ReLU outputs; per-sample scales
// (a gated block's skip scale) with residuals.
std::vector<Case> cases() {
  return {{{3, 4, 40, 40}, false, true}, {{3, 4, 40, 40}, true, true}, {{5, 8, 7, 7}, true, true},
          {{6, 3, 1, 5}, false, false},  {{9, 4, 1, 1}, true, false},  {{2, 16, 7, 7}, false, true},
          {{3, 4, 40, 40}, true, true, true}, {{5, 8, 7, 7}, true, false, true}};
}

struct Gradients {
  torch::Tensor y, dx, dweight, dbias, dresidual, dscale;
};

// relu(batch_norm(x) * k + r) in float64, and its gradients for dy given the ReLU's mask `active` (taken from the
// fused output, so that a value within rounding of 0 cannot make the two masks differ).
Gradients float64_reference(const torch::Tensor& x, const torch::Tensor& r, const torch::Tensor& weight,
                            const torch::Tensor& bias, const torch::Tensor& k, const torch::Tensor& dy,
                            const torch::Tensor& active) {
  const torch::Tensor x64 = x.to(torch::kDouble);
  const auto [var, mean] = at::var_mean(x64, {0, 2, 3}, /*unbiased=*/false);
  const torch::Tensor invstd = (var + kEps).rsqrt().view({1, -1, 1, 1});
  const torch::Tensor xhat = (x64 - mean.view({1, -1, 1, 1})) * invstd;
  const torch::Tensor w = weight.defined() ? weight.to(torch::kDouble).view({1, -1, 1, 1}) : torch::ones_like(invstd);
  const torch::Tensor b = bias.defined() ? bias.to(torch::kDouble).view({1, -1, 1, 1}) : torch::zeros_like(invstd);
  const torch::Tensor normalised = xhat * w + b;
  const torch::Tensor scale = k.defined() ? k.to(torch::kDouble).view({-1, 1, 1, 1}) : torch::ones({1, 1, 1, 1}, xhat.options());
  torch::Tensor pre = normalised * scale;
  if (r.defined()) pre = pre + r.to(torch::kDouble);
  Gradients out;
  out.y = pre.clamp_min(0);
  const torch::Tensor g = dy.to(torch::kDouble) * active.to(torch::kDouble);
  const torch::Tensor gb = g * scale;  // behind the scale
  const torch::Tensor mean_g = gb.mean({0, 2, 3}, true), mean_g_xhat = (gb * xhat).mean({0, 2, 3}, true);
  out.dx = w * invstd * (gb - mean_g - xhat * mean_g_xhat);
  out.dweight = (gb * xhat).sum({0, 2, 3});
  out.dbias = gb.sum({0, 2, 3});
  out.dresidual = g;
  out.dscale = (g * normalised).sum({1, 2, 3});
  return out;
}

void expect_close(const torch::Tensor& got, const torch::Tensor& want, double tolerance, const std::string& what) {
  const double scale = std::max(1.0, want.abs().max().item<double>());
  const double error = (got.to(torch::kDouble) - want.to(torch::kDouble)).abs().max().item<double>();
  EXPECT_LE(error, tolerance * scale) << what;
}

// Float32 outputs of a float64-exact computation: the statistics in float lanes of at most a few hundred values
// (batch_norm_kernels.h), then float coefficients: a few float roundings, well below 1e-5 of the largest value; a
// wrong term (a missing mask, mean or coefficient) is off by far more.
TEST(FusedBatchNormRelu, EqualsBatchNormAddAndReluInFloat64) {
  torch::manual_seed(3);
  for (const Case& c : cases()) {
    const int64_t channels = c.sizes[1];
    const torch::Tensor x = (torch::randn(c.sizes) * 1.5 + 2).requires_grad_();
    const torch::Tensor r = c.residual ? torch::randn(c.sizes).requires_grad_() : torch::Tensor();
    const torch::Tensor weight = c.affine ? (torch::rand({channels}) + 0.5).requires_grad_() : torch::Tensor();
    const torch::Tensor bias = c.affine ? (torch::randn({channels}) * 0.5).requires_grad_() : torch::Tensor();
    // Scales in [0.5, 1.5), one exactly 1 and one 0 (a gated block's values).
    torch::Tensor k;
    if (c.scaled) {
      k = torch::rand({c.sizes[0]}) + 0.5;
      k[0] = 1.0;
      k[1] = 0.0;
      k.requires_grad_();
    }
    const std::string name = "sizes " + c10::str(c.sizes) + (c.residual ? " with residual" : "") +
                             (c.affine ? " affine" : "") + (c.scaled ? " scaled" : "");
    const torch::Tensor y = fused_batch_norm_relu(x, r, weight, bias, {}, {}, 0.1, kEps, k);
    const torch::Tensor dy = torch::randn(c.sizes);
    y.backward(dy);
    const auto detached = [](const torch::Tensor& t) { return t.defined() ? t.detach() : t; };
    const Gradients want = float64_reference(x.detach(), detached(r), detached(weight), detached(bias), detached(k),
                                             dy, y.detach() > 0);
    expect_close(y, want.y, 1e-5, name + ": output");
    EXPECT_GT((y > 0).sum().item<int64_t>(), 0) << name;
    EXPECT_GT((y == 0).sum().item<int64_t>(), 0) << name;  // the mask matters in every case
    expect_close(x.grad(), want.dx, 1e-5, name + ": dx");
    if (c.affine) {
      expect_close(weight.grad(), want.dweight, 1e-5, name + ": dweight");
      expect_close(bias.grad(), want.dbias, 1e-5, name + ": dbias");
    }
    if (c.residual) {
      EXPECT_TRUE(torch::equal(r.grad(), want.dresidual.to(torch::kFloat))) << name << ": dresidual";
    }
    if (c.scaled) expect_close(k.grad(), want.dscale, 1e-5, name + ": dscale");
    // The op remembers the ranges of what it wrote for the quantizer (range_memo.h): y's, and dx's, which reaches
    // x.grad() as the very tensor (its only gradient).
    for (const torch::Tensor& written : {y, x.grad()}) {
      const std::optional<QuantRange> remembered = range_memo::recall(written);
      ASSERT_TRUE(remembered.has_value()) << name;
      const auto [lo, hi] = at::aminmax(written);
      EXPECT_EQ(remembered->lo, lo.item<float>()) << name;
      EXPECT_EQ(remembered->hi, hi.item<float>()) << name;
    }
  }
}

// A NaN in the input makes the remembered range NaN, as tensor_range's scan would.
TEST(FusedBatchNormRelu, RemembersANaNRange) {
  torch::Tensor x = torch::randn({4, 3, 6, 6});
  x[2][1][3][3] = NAN;
  const torch::Tensor y = fused_batch_norm_relu(x, {}, {}, {}, {}, {}, 0.1, kEps, {});
  const std::optional<QuantRange> remembered = range_memo::recall(y);
  ASSERT_TRUE(remembered.has_value());
  EXPECT_TRUE(std::isnan(remembered->lo) && std::isnan(remembered->hi));
}

// The running statistics follow torch's update (momentum, unbiased variance), also as a cumulative average.
TEST(FusedBatchNormRelu, RunningStatisticsFollowTorchsUpdate) {
  torch::manual_seed(4);
  for (const c10::optional<double> momentum : {c10::optional<double>(0.1), c10::optional<double>()}) {
    auto options = torch::nn::BatchNormOptions(5).momentum(momentum);
    SyncBatchNorm2d fused(options), plain(options);
    fused.set_fused_kernels(true);
    for (int step = 0; step < 3; ++step) {
      const torch::Tensor x = torch::randn({4, 5, 6, 6}) * 3 + 1;
      fused.forward_relu(x);
      plain.forward_relu(x);
    }
    EXPECT_TRUE(torch::allclose(fused.running_mean, plain.running_mean, 1e-6, 1e-6)) << momentum.has_value();
    EXPECT_TRUE(torch::allclose(fused.running_var, plain.running_var, 1e-6, 1e-6)) << momentum.has_value();
    EXPECT_EQ(fused.num_batches_tracked.item<int64_t>(), 3);
    EXPECT_FALSE(torch::allclose(fused.running_var, torch::ones({5}))) << "the running variance moved";
  }
}

// Fused kernels off (the default), in evaluation, or for inputs they do not take: exactly torch's ops.
TEST(FusedBatchNormRelu, LayerRunsTorchsOpsWhereTheFusionDoesNotApply) {
  torch::manual_seed(5);
  SyncBatchNorm2d layer(6);
  torch::nn::BatchNorm2d reference(6);
  const torch::Tensor x = torch::randn({4, 6, 5, 5}), r = torch::randn({4, 6, 5, 5});
  EXPECT_TRUE(torch::equal(layer.forward_relu(x, r), torch::relu(reference->forward(x) + r)));
  layer.set_fused_kernels(true);
  layer.eval();
  reference->eval();
  EXPECT_TRUE(torch::equal(layer.forward_relu(x, r), torch::relu(reference->forward(x) + r)));
  layer.train();
  reference->train();
  const torch::Tensor as_double = x.to(torch::kDouble);
  EXPECT_FALSE(fused_batch_norm_relu_applies(as_double, {}));
  EXPECT_FALSE(fused_batch_norm_relu_applies(x.transpose(2, 3), {}));
  EXPECT_FALSE(fused_batch_norm_relu_applies(x, r.slice(0, 0, 2)));
  EXPECT_FALSE(fused_batch_norm_relu_applies(torch::randn({1, 6, 1, 1}), {}));
  EXPECT_FALSE(fused_batch_norm_relu_applies(x, {}, torch::ones({4})));  // a scale needs a residual
  EXPECT_FALSE(fused_batch_norm_relu_applies(x, r, torch::ones({3})));
  EXPECT_TRUE(fused_batch_norm_relu_applies(x, r));
  EXPECT_TRUE(fused_batch_norm_relu_applies(x, r, torch::ones({4})));
}

// Its gradients carry no graph of their own: backward with create_graph is refused, not silently first-order.
TEST(FusedBatchNormRelu, DoubleBackwardIsAClearError) {
  const torch::Tensor x = torch::randn({4, 3, 5, 5}).requires_grad_();
  const torch::Tensor y = fused_batch_norm_relu(x, {}, {}, {}, {}, {}, 0.1, kEps);
  std::string message;
  try {
    torch::autograd::grad({y.sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true);
  } catch (const std::exception& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("does not support double backward"), std::string::npos) << message;
}

// A ResNet's training step with train.fused_batch_norm on against torch's ops: the same loss and parameter
// gradients up to float rounding (the ReLU masks of values within rounding of 0 may differ, so each gradient is
// compared by its norm).
TEST(FusedBatchNormRelu, ResNetGradientsEqualTorchsOps) {
  const ModelInputSpec input{3, 16, 16, 10};
  torch::manual_seed(6);
  const torch::Tensor images = torch::randn({8, 3, 16, 16}), labels = torch::randint(0, 10, {8}, torch::kLong);
  std::vector<std::vector<torch::Tensor>> gradients;
  std::vector<double> losses;
  for (const bool fused : {false, true}) {
    torch::manual_seed(1);
    auto model = create_model("resnet8", input);
    model->train();
    EXPECT_GT(set_fused_batch_norm(*model, fused), 0);
    const PrecisionPlan plan = make_static_plan(*model, Precision::full(), {});
    const torch::Tensor loss = torch::cross_entropy_loss(model->forward(images, plan), labels);
    loss.backward();
    losses.push_back(loss.item<double>());
    gradients.emplace_back();
    for (const auto& p : model->parameters()) gradients.back().push_back(p.grad().clone());
  }
  EXPECT_NEAR(losses[0], losses[1], 1e-5 * std::abs(losses[0]));
  ASSERT_EQ(gradients[0].size(), gradients[1].size());
  for (size_t i = 0; i < gradients[0].size(); ++i) {
    const double norm = gradients[0][i].norm().item<double>();
    EXPECT_LE((gradients[1][i] - gradients[0][i]).norm().item<double>(), 1e-4 * norm + 1e-7) << "parameter " << i;
  }
}

// A DFQ-gated BasicBlock under mixed execution with the fused kernels fuses its second BatchNorm with the skip
// scale, the shortcut and the ReLU: on the running subset of the batch, on the whole batch, and with a projection
// shortcut. The same output and gradients as torch's ops: the input's, the block's parameters' and the gate
// probabilities' (which come through the skip scale). Options skip and full precision: quantization would turn
// rounding differences into different codes now and then.
TEST(FusedBatchNormRelu, GatedBlockEqualsTorchsOps) {
  const OptionSet options = OptionSet::parse("skip,32/32", 32);
  struct BlockCase {
    int64_t in_channels, out_channels, stride;
    std::vector<int64_t> choices;  // 0 skips, 1 runs
  };
  const std::vector<BlockCase> block_cases = {
      {8, 8, 1, {1, 0, 1, 1, 0, 1}}, {8, 8, 1, {1, 1, 1, 1, 1, 1}}, {4, 8, 2, {1, 1, 1, 1, 1, 1}}};
  for (const BlockCase& c : block_cases) {
    auto block = test_support::trained_block<BasicBlock>(c.in_channels, c.out_channels, c.stride);
    block->train();
    torch::manual_seed(9);
    const torch::Tensor x0 = torch::rand({6, c.in_channels, 6, 6}), dy = torch::randn({6, c.out_channels,
                                                                                        c.stride == 1 ? 6 : 3,
                                                                                        c.stride == 1 ? 6 : 3});
    std::vector<std::vector<torch::Tensor>> results;
    for (const bool fused : {false, true}) {
      set_fused_batch_norm(*block, fused);
      EXPECT_EQ(block->fuses_combination(), fused);
      block->zero_grad();
      const torch::Tensor x = x0.clone().requires_grad_();
      const GateDecision decision = test_support::fixed_decision(c.choices, 2);
      const torch::Tensor y = run_gated_block_mixed(*block, x, decision, GatedBlockRun{options, 0, false});
      y.backward(dy);
      std::vector<torch::Tensor> r = {y.detach(), x.grad()};
      // The gate's gradient: the probabilities' (a leaf in fixed_decision), through the skip scale (blocks that
      // may skip; a projection block's skip probability is 0).
      if (c.stride == 1) r.push_back(decision.probabilities.grad());
      for (const auto& p : block->parameters()) r.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
      results.push_back(r);
    }
    const std::string name = "block " + std::to_string(c.in_channels) + "->" + std::to_string(c.out_channels) +
                             " choices " + c10::str(c.choices);
    for (size_t i = 0; i < results[0].size(); ++i) {
      const double norm = results[0][i].norm().item<double>();
      EXPECT_GT(norm, 0.0) << name << " result " << i;
      EXPECT_LE((results[1][i] - results[0][i]).norm().item<double>(), 1e-5 * norm) << name << " result " << i;
    }
  }
}

}  // namespace
}  // namespace fractrain
