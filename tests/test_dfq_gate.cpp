// The DFQ gate: its decision is one-hot, its gradient is that of the straight-through surrogate (checked
// against finite differences), and the option gradient at a quantized layer's input is the gradient of the
// straight-through mixture of the K quantized inputs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/nn/decision_gate.h"
#include "fractrain/nn/option_gradient.h"
#include "fractrain/nn/spatial_mean.h"
#include "fractrain/util/error.h"

using namespace fractrain;

TEST(DfqGate, DecisionIsOneHotArgmaxWithTheProbabilitiesGradient) {
  torch::manual_seed(3);
  DecisionGate gate({16, 32}, 5);
  const at::Tensor x = torch::randn({6, 16, 8, 8});
  gate.reset();
  const GateDecision d = gate.decide(0, x, std::vector<bool>(5, true));
  ASSERT_EQ(d.host_decisions().size(), 6u);
  EXPECT_TRUE(torch::allclose(d.probabilities.sum(1), torch::ones({6})));
  const at::Tensor argmax = d.probabilities.argmax(1);
  for (int64_t n = 0; n < 6; ++n) {
    EXPECT_EQ(d.host_decisions()[n], argmax[n].item<int64_t>());
    for (int64_t k = 0; k < 5; ++k)
      EXPECT_NEAR(d.mask[n][k].item<float>(), k == d.host_decisions()[n] ? 1.0f : 0.0f, 1e-6f);
  }
  EXPECT_TRUE(d.mask.requires_grad());
  // A disallowed option gets probability 0 and is never chosen.
  gate.reset();
  std::vector<bool> allowed(5, true);
  allowed[argmax[0].item<int64_t>()] = false;
  const GateDecision limited = gate.decide(0, x, allowed);
  EXPECT_EQ(limited.probabilities[0][argmax[0].item<int64_t>()].item<float>(), 0.0f);
  EXPECT_NE(limited.host_decisions()[0], argmax[0].item<int64_t>());
}

TEST(DfqGate, GradientMatchesFiniteDifferencesOfTheSurrogate) {
  torch::manual_seed(5);
  DecisionGate gate({8, 8}, 4);
  gate.to(torch::kDouble);
  const at::Tensor x0 = torch::randn({3, 8, 4, 4}, torch::kDouble), x1 = torch::randn({3, 8, 4, 4}, torch::kDouble);
  const at::Tensor weights = torch::randn({2, 3, 4}, torch::kDouble);
  const std::vector<bool> all(4, true);
  // Loss through the masks of two blocks (the LSTM carries block 0's state into block 1). Its gradient is that
  // of the surrogate sum(W * p), which is smooth: compare with central differences of the surrogate.
  auto run = [&](bool surrogate) {
    gate.reset();
    const GateDecision a = gate.decide(0, x0, all), b = gate.decide(1, x1, all);
    const at::Tensor& ma = surrogate ? a.probabilities : a.mask;
    const at::Tensor& mb = surrogate ? b.probabilities : b.mask;
    return (weights[0] * ma).sum() + (weights[1] * mb).sum();
  };
  gate.zero_grad();
  run(false).backward();
  int checked = 0;
  for (auto& p : gate.named_parameters()) {
    at::Tensor flat = p.value().view({-1});
    const at::Tensor grad = p.value().grad().view({-1});
    for (int64_t i = 0; i < flat.numel(); i += std::max<int64_t>(1, flat.numel() / 3)) {
      torch::NoGradGuard no_grad;
      const double h = 1e-6, saved = flat[i].item<double>();
      flat[i] = saved + h;
      const double up = run(true).item<double>();
      flat[i] = saved - h;
      const double down = run(true).item<double>();
      flat[i] = saved;
      EXPECT_NEAR(grad[i].item<double>(), (up - down) / (2 * h), 1e-6) << p.key() << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

// The gate's pooling: the same mean as x.mean({2, 3}) and, bit for bit, the same gradient, alone and accumulated
// with another use of x (as a block's input is used by its convolution and by its gate).
TEST(DfqGate, SpatialMeanEqualsTheMeanAndItsGradient) {
  torch::manual_seed(17);
  for (const auto& sizes : std::vector<std::vector<int64_t>>{{3, 5, 7, 9}, {2, 16, 32, 32}, {1, 1, 1, 1}}) {
    const at::Tensor x0 = torch::randn(sizes);
    const at::Tensor g = torch::randn({sizes[0], sizes[1]});
    at::Tensor a = x0.clone().requires_grad_(true), b = x0.clone().requires_grad_(true);
    const at::Tensor ma = spatial_mean(a), mb = b.mean({2, 3});
    EXPECT_TRUE(torch::equal(ma, mb));
    const at::Tensor other = torch::randn(sizes);
    ((ma * g).sum() + (a * other).sum()).backward();
    ((mb * g).sum() + (b * other).sum()).backward();
    EXPECT_TRUE(torch::equal(a.grad(), b.grad()));
  }
  EXPECT_THROW(spatial_mean(torch::randn({2, 3})), Error);
}

TEST(DfqOptionGradient, FusedInnerProductsMatchTheReference) {
  torch::manual_seed(7);
  const at::Tensor x = torch::randn({5, 3, 7, 9}), g = torch::randn({5, 3, 7, 9});
  // Repeated widths (as in cifar-release: 3, 4, 4, 6, 6) are computed once and copied.
  const std::vector<int> bits = {3, 4, 6, 0, 12, 4, 0};
  const QuantRange range = tensor_range(x);
  for (bool snap : {false, true}) {
    const at::Tensor fused = option_inner_products(x, g, bits, range, snap);
    const at::Tensor ref = reference::option_inner_products(x, g, bits, range, snap);
    ASSERT_EQ(fused.sizes(), (std::vector<int64_t>{5, 7}));
    EXPECT_TRUE(torch::allclose(fused, ref, 1e-4, 1e-3)) << fused - ref;
  }
}

TEST(DfqOptionGradient, VectorKernelEqualsPortableKernelBitForBit) {
  // The AVX-512 form divides by multiplying with the reciprocal and one FMA correction (exact: Markstein); it must
  // give the portable form's sums bit for bit. Rows with tails after the last 16 lanes and the last 4096-span, more
  // than four quantized widths (two passes), FP32 widths, repeated widths.
  torch::manual_seed(21);
  const std::vector<int> bits = {3, 4, 6, 0, 12, 4, 2, 8, 16, 0};
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{7, 3, 7, 9}, {3, 16, 32, 32}, {2, 4133}}) {
    at::Tensor x = torch::randn(shape), g = torch::randn(shape);
    const QuantRange range = tensor_range(x);
    // Values on the rounding ties of 3, 4 and 6 bits (t + 0.5 steps from lo) and at the range's ends.
    at::Tensor flat = x.view({-1});
    for (int b : {3, 4, 6}) {
      const float step = (range.hi - range.lo) / static_cast<float>((1 << b) - 1);
      for (int64_t t = 0; t < (1 << b) - 1; ++t) flat[(t * 37 + b) % flat.numel()] = range.lo + (t + 0.5f) * step;
    }
    for (bool snap : {false, true}) {
      const at::Tensor fast = option_inner_products(x, g, bits, range, snap);
      const at::Tensor portable = option_inner_products(x, g, bits, range, snap, OptionProductKernel::Portable);
      EXPECT_TRUE(torch::equal(fast, portable)) << (fast - portable).abs().max();
    }
  }
  // Outside the range (clamped), -0 over a range from +0, infinities, NaN and an overflowing quotient (the
  // division's results).
  // Row 0 has the infinities, row 1 a NaN as well (which makes its sums NaN).
  const at::Tensor row = torch::tensor({-0.0f, 0.0f, 5.0f, -3.0f, 1.0f / 3.0f, INFINITY, -INFINITY, 0.4f, 0.5f,
                                        0.25f, 0.75f, 1.0f, 1e-40f, -1e-40f, 1e31f, 0.1f, 0.2f, 0.3f});
  const at::Tensor x = torch::stack({row, row.index_put({torch::tensor({7})}, torch::tensor(NAN))});
  const at::Tensor g = torch::linspace(-1.0, 1.0, x.numel()).view_as(x);
  // The last range's step is the 1e-8 floor: 1e31's quotient overflows (to the top code, as the division's inf).
  for (const QuantRange range : {QuantRange{0.0f, 1.0f}, QuantRange{-0.3f, 2.0f}, QuantRange{0.0f, 1e-12f}}) {
    const at::Tensor fast = option_inner_products(x, g, {3, 8}, range, false);
    const at::Tensor portable = option_inner_products(x, g, {3, 8}, range, false, OptionProductKernel::Portable);
    EXPECT_TRUE(torch::isfinite(portable[0]).all().item<bool>()) << portable;  // infinities clamp to the grid's ends
    EXPECT_TRUE(torch::isnan(portable[1]).all().item<bool>()) << portable;
    EXPECT_TRUE(torch::equal(fast.isnan(), portable.isnan()));
    EXPECT_TRUE(torch::equal(fast.nan_to_num(0.0), portable.nan_to_num(0.0))) << fast << portable;
    // Without the infinities (columns 5, 6), finite values.
    const at::Tensor finite = torch::cat({x.slice(1, 0, 5), x.slice(1, 7)}, 1).slice(0, 0, 1);
    const at::Tensor finite_g = torch::cat({g.slice(1, 0, 5), g.slice(1, 7)}, 1).slice(0, 0, 1);
    const at::Tensor f = option_inner_products(finite, finite_g, {3, 8}, range, true);
    EXPECT_TRUE(torch::equal(f, option_inner_products(finite, finite_g, {3, 8}, range, true,
                                                      OptionProductKernel::Portable)));
    EXPECT_TRUE(torch::isfinite(f).all().item<bool>());
  }
}

TEST(DfqOptionGradient, IsTheGradientOfTheStraightThroughMixture) {
  torch::manual_seed(9);
  const at::Tensor x = torch::randn({4, 2, 5, 5}, torch::requires_grad());
  const at::Tensor upstream = torch::randn({4, 2, 5, 5});
  const std::vector<int> bits = {3, 4, 8};
  const at::Tensor probabilities = torch::softmax(torch::randn({4, 3}), 1).requires_grad_();
  const at::Tensor onehot = torch::zeros({4, 3}).scatter_(1, probabilities.argmax(1, true), 1.0);

  // fractrain's identity node: forward x, backward <g, Q_k(x)> into the mask.
  const at::Tensor mask = onehot - probabilities.detach() + probabilities;
  const at::Tensor y = attach_option_gradient(x, mask, bits, false);
  EXPECT_TRUE(torch::equal(y, x));
  (upstream * y).sum().backward();
  const at::Tensor node_p = probabilities.grad().clone(), node_x = x.grad().clone();

  // The mixture written out: sum_k mask_k Q_k(x), straight-through in x.
  probabilities.grad().zero_();
  x.grad().zero_();
  const at::Tensor mask2 = onehot - probabilities.detach() + probabilities;
  at::Tensor mixture = torch::zeros_like(x);
  for (size_t k = 0; k < bits.size(); ++k) {
    const at::Tensor q = reference::fake_quantize(x.detach(), bits[k], tensor_range(x.detach()));
    mixture = mixture + mask2.select(1, static_cast<int64_t>(k)).view({4, 1, 1, 1}) * (x - x.detach() + q);
  }
  (upstream * mixture).sum().backward();
  EXPECT_TRUE(torch::allclose(node_p, probabilities.grad(), 1e-4, 1e-4));
  // d mixture / d x = sum_k mask_k = 1 (up to rounding of onehot - p + p): the gradient passes straight through.
  EXPECT_TRUE(torch::allclose(node_x, x.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(node_x, upstream));
}
