// QConv2d / QLinear: the three quantization points sit where DESIGN.md 4.1 puts them, and the backward pass
// computes exactly dX = conv_transpose(Q(dY), Q(W)) and dW = correlate(Q(X), Q(dY)).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"
#include "fractrain/quant/straight_through.h"
#include "fractrain/util/error.h"

using namespace fractrain;

namespace {

std::shared_ptr<QConv2d> make_conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t pad = 1) {
  QConv2dOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel_size = k;
  o.stride = stride;
  o.padding = pad;
  auto conv = std::make_shared<QConv2d>(o);
  conv->set_layer_name("conv");
  conv->set_layer_index(3);
  QuantizerSettings settings;
  settings.noise_seed = 77;
  conv->set_quantizer_settings(settings);
  return conv;
}

// The quantized output gradient the layer must use: stochastic, per-tensor range, its own noise stream.
at::Tensor expected_gradient(const at::Tensor& g, int bits, int64_t layer_index, uint64_t noise_step) {
  QuantizeOptions o;
  o.rounding = Rounding::Stochastic;
  o.noise = PhiloxStream{77, mix_stream(static_cast<uint64_t>(layer_index), noise_step)};
  return fake_quantize(g, bits, tensor_range(g), o);
}

struct Recorder : CostObserver {
  std::vector<std::tuple<std::string, int64_t, int64_t, Precision>> calls;
  void on_layer(const LayerExecution& e) override {
    calls.emplace_back(e.layer, e.macs_per_sample, e.batch, e.precision.for_sample(0));
  }
};

}  // namespace

TEST(QConv2d, GradientsAreConvolutionsOfQuantizedOperands) {
  torch::manual_seed(0);
  auto conv = make_conv(3, 4, 3);
  conv->train();
  at::Tensor x = torch::randn({2, 3, 6, 5}, torch::requires_grad());
  at::Tensor g = torch::randn({2, 4, 6, 5});
  const Precision p = Precision::fw_bw(4, 6);
  at::Tensor y = conv->forward(x, LayerPrecision::uniform(p), /*noise_step=*/11);
  y.backward(g);

  const at::Tensor xq = fake_quantize(x.detach(), 4, tensor_range(x.detach()));
  const at::Tensor wq = fake_quantize_per_channel(conv->weight().detach(), 4);
  const at::Tensor gq = expected_gradient(g, 6, 3, 11);
  // Forward: the conv of quantized operands.
  EXPECT_TRUE(torch::allclose(y, torch::conv2d(xq, wq, {}, 1, 1), 1e-5, 1e-6));
  // Error backward: transposed conv of the quantized output gradient with the quantized weight.
  at::Tensor dx = torch::conv_transpose2d(gq, wq, {}, 1, 1);
  EXPECT_TRUE(torch::allclose(x.grad(), dx, 1e-5, 1e-5));
  // Weight gradient: correlation of the quantized input with the quantized output gradient.
  at::Tensor dw = torch::conv2d(xq.transpose(0, 1), gq.transpose(0, 1), {}, 1, 1).transpose(0, 1);
  EXPECT_TRUE(torch::allclose(conv->weight().grad(), dw, 1e-4, 1e-5));
  // And the gradient really was quantized: dX differs from the one with the raw gradient.
  EXPECT_FALSE(torch::allclose(x.grad(), torch::conv_transpose2d(g, wq, {}, 1, 1), 1e-3, 1e-3));
}

TEST(QConv2d, StridedConvGradientMatchesReferenceAutograd) {
  torch::manual_seed(1);
  auto conv = make_conv(2, 3, 3, 2, 1);
  conv->train();
  at::Tensor x = torch::randn({3, 2, 7, 7}, torch::requires_grad());
  at::Tensor g = torch::randn({3, 3, 4, 4});
  conv->forward(x, LayerPrecision::uniform(Precision::fw_bw(8, 8)), 0).backward(g);

  at::Tensor xq = fake_quantize(x.detach(), 8, tensor_range(x.detach())).requires_grad_();
  at::Tensor wq = fake_quantize_per_channel(conv->weight().detach(), 8).requires_grad_();
  torch::conv2d(xq, wq, {}, 2, 1).backward(expected_gradient(g, 8, 3, 0));
  EXPECT_TRUE(torch::allclose(x.grad(), xq.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(conv->weight().grad(), wq.grad(), 1e-5, 1e-6));
}

TEST(QConv2d, FullPrecisionIsAPlainConvolution) {
  torch::manual_seed(2);
  auto conv = make_conv(3, 5, 3);
  conv->train();
  at::Tensor x = torch::randn({2, 3, 8, 8}, torch::requires_grad());
  at::Tensor y = conv->forward(x, LayerPrecision::uniform(Precision::full()), 0);
  EXPECT_TRUE(torch::equal(y, torch::conv2d(x, conv->weight(), {}, 1, 1)));
}

TEST(QConv2d, PerSampleActivationBitsUseOneBatchRange) {
  torch::manual_seed(3);
  auto conv = make_conv(2, 2, 3);
  conv->train();
  at::Tensor x = torch::randn({3, 2, 5, 5});
  const QuantRange batch_range = tensor_range(x);
  auto lp = LayerPrecision::per_sample(8, {2, 0, 6}, {6, 8, 12});
  at::Tensor y = conv->forward(x, lp, 0);
  const at::Tensor wq = fake_quantize_per_channel(conv->weight().detach(), 8);
  const int bits[3] = {2, 0, 6};
  for (int i = 0; i < 3; ++i) {
    at::Tensor xi = x.slice(0, i, i + 1);
    at::Tensor xqi = fake_quantize(xi.contiguous(), bits[i], batch_range);
    EXPECT_TRUE(torch::allclose(y.slice(0, i, i + 1), torch::conv2d(xqi, wq, {}, 1, 1), 1e-5, 1e-6)) << i;
  }
  EXPECT_THROW(conv->forward(torch::randn({2, 2, 5, 5}), lp, 0), fractrain::Error);
}

TEST(QConv2d, RunningActivationRangeDrivesEvalMode) {
  auto conv = make_conv(1, 1, 1, 1, 0);
  conv->train();
  conv->forward(torch::tensor({0.0f, 1.0f}).reshape({1, 1, 1, 2}), LayerPrecision::uniform(Precision::fw_bw(8, 8)), 0);
  conv->forward(torch::tensor({-1.0f, 3.0f}).reshape({1, 1, 1, 2}), LayerPrecision::uniform(Precision::fw_bw(8, 8)), 0);
  // First batch initialises (lo 0, span 1); second: lo 0.9*0 + 0.1*(-1), span 0.9*1 + 0.1*4.
  const QuantRange r = conv->running_activation_range();
  EXPECT_NEAR(r.lo, -0.1f, 1e-6);
  EXPECT_NEAR(r.hi - r.lo, 1.3f, 1e-6);
  conv->eval();
  torch::NoGradGuard no_grad;
  at::Tensor x = torch::tensor({-5.0f, 5.0f}).reshape({1, 1, 1, 2});
  at::Tensor y = conv->forward(x, LayerPrecision::uniform(Precision::fw_bw(8, 8)), 0);
  const at::Tensor wq = fake_quantize_per_channel(conv->weight().detach(), 8);
  // Eval clamps to the running range, not the batch's own [-5, 5].
  EXPECT_TRUE(torch::allclose(y, torch::conv2d(fake_quantize(x, 8, r), wq), 1e-6, 1e-6));
}

TEST(QConv2d, ReportsMacsAndPrecisionToTheCostObserver) {
  auto conv = make_conv(3, 8, 3, 2, 1);
  Recorder recorder;
  conv->set_cost_observer(&recorder);
  conv->train();
  conv->forward(torch::randn({5, 3, 9, 9}), LayerPrecision::uniform(Precision::fw_bw(8, 16)), 0);
  ASSERT_EQ(recorder.calls.size(), 1u);
  const auto& [name, macs, batch, precision] = recorder.calls[0];
  EXPECT_EQ(name, "conv");
  EXPECT_EQ(macs, 8 * 5 * 5 * 3 * 3 * 3);  // out 8x5x5, each output 3 channels x 3x3
  EXPECT_EQ(batch, 5);
  EXPECT_EQ(precision, Precision::fw_bw(8, 16));
}

TEST(QConv2d, RejectsBadShapes) {
  QConv2dOptions o;
  o.in_channels = 3;
  o.out_channels = 0;
  EXPECT_THROW(QConv2d{o}, fractrain::Error);
  auto conv = make_conv(3, 4, 3);
  EXPECT_THROW(conv->forward(torch::randn({1, 2, 5, 5}), LayerPrecision::uniform(Precision::full()), 0),
               fractrain::Error);
}

TEST(QLinear, GradientsUseQuantizedOperands) {
  torch::manual_seed(4);
  QLinear fc(6, 3);
  fc.set_layer_name("fc");
  fc.set_layer_index(3);
  QuantizerSettings settings;
  settings.noise_seed = 77;
  fc.set_quantizer_settings(settings);
  fc.train();
  at::Tensor x = torch::randn({4, 6}, torch::requires_grad());
  at::Tensor g = torch::randn({4, 3});
  fc.forward(x, LayerPrecision::uniform(Precision::fw_bw(6, 8)), 5).backward(g);
  const at::Tensor xq = fake_quantize(x.detach(), 6, tensor_range(x.detach()));
  const at::Tensor wq = fake_quantize_per_channel(fc.weight().detach(), 6);
  const at::Tensor gq = expected_gradient(g, 8, 3, 5);
  EXPECT_TRUE(torch::allclose(x.grad(), gq.matmul(wq), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(fc.weight().grad(), gq.t().matmul(xq), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(fc.bias().grad(), gq.sum(0), 1e-5, 1e-6));
}

namespace {

// Records what reaches a hook without keeping a reference to the gradient (which would change how the
// autograd engine shares it).
struct SeenGradient {
  const void* data = nullptr;
  at::Tensor value;
  std::function<void(const at::Tensor&)> hook() {
    return [this](const at::Tensor& g) {
      data = g.data_ptr();
      value = g.clone();
    };
  }
};

at::Tensor reference_gradient(const at::Tensor& g, const GradientQuantization& spec) {
  QuantizeOptions o;
  o.rounding = Rounding::Stochastic;
  o.noise = spec.noise;
  return spec.row_bits.empty() ? reference::fake_quantize(g, spec.bits, tensor_range(g), o)
                               : reference::fake_quantize_rows(g, spec.row_bits, tensor_range(g), o);
}

}  // namespace

TEST(FakeQuantizeInBackward, QuantizesAnExclusiveGradientInPlace) {
  torch::manual_seed(10);
  for (const std::vector<int>& row_bits : {std::vector<int>{}, std::vector<int>{8, 0, 4}}) {
    at::Tensor a = torch::randn({3, 5, 7}, torch::requires_grad());
    at::Tensor b = a * 1.0;
    GradientQuantization spec;
    spec.bits = 6;
    spec.row_bits = row_bits;
    spec.noise = PhiloxStream{5, 6};
    at::Tensor c = quantize_gradient_in_backward(b, spec);
    SeenGradient arriving, leaving;
    c.register_hook(arriving.hook());
    b.register_hook(leaving.hook());
    (c * 3).backward(torch::randn({3, 5, 7}));  // MulBackward makes a gradient only the engine holds
    EXPECT_EQ(arriving.data, leaving.data) << "expected in place";
    EXPECT_TRUE(torch::equal(leaving.value, reference_gradient(arriving.value, spec)));
    EXPECT_TRUE(torch::equal(a.grad(), leaving.value));
  }
}

TEST(FakeQuantizeInBackward, LeavesASharedGradientUntouched) {
  // c + v hands the same gradient tensor to both branches: quantizing it in place would corrupt v's gradient.
  // The engine runs the later-created node first, so try both creation orders.
  torch::manual_seed(11);
  for (bool quantizer_first : {true, false}) {
    at::Tensor a = torch::randn({4, 9}, torch::requires_grad());
    at::Tensor u = torch::randn({4, 9}, torch::requires_grad());
    GradientQuantization spec;
    spec.bits = 4;
    spec.noise = PhiloxStream{1, 2};
    at::Tensor v, c;
    if (quantizer_first) {
      c = quantize_gradient_in_backward(a * 1.0, spec);
      v = u * 1.0;
    } else {
      v = u * 1.0;
      c = quantize_gradient_in_backward(a * 1.0, spec);
    }
    const at::Tensor g = torch::randn({4, 9});
    ((c + v) * 2).backward(g);
    EXPECT_TRUE(torch::equal(u.grad(), g * 2)) << "quantizer created first: " << quantizer_first;
    EXPECT_TRUE(torch::equal(a.grad(), reference_gradient(g * 2, spec)));
  }
}

TEST(FakeQuantizeInBackward, LeavesTheCallersGradientUntouched) {
  at::Tensor a = torch::randn({2, 8}, torch::requires_grad());
  GradientQuantization spec;
  spec.bits = 3;
  spec.noise = PhiloxStream{7, 8};
  const at::Tensor g = torch::randn({2, 8});
  const at::Tensor g_before = g.clone();
  quantize_gradient_in_backward(a * 1.0, spec).backward(g);
  EXPECT_TRUE(torch::equal(g, g_before));
  EXPECT_TRUE(torch::equal(a.grad(), reference_gradient(g, spec)));
}

TEST(FakeQuantizeInBackward, IdentityWithoutGradient) {
  at::Tensor a = torch::randn({3});
  GradientQuantization spec;
  spec.bits = 8;
  EXPECT_TRUE(quantize_gradient_in_backward(a, spec).is_same(a));
  at::Tensor w = torch::randn({3}, torch::requires_grad());
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(quantize_gradient_in_backward(w, spec).is_same(w));
  EXPECT_TRUE(straight_through(w, a).is_same(a));
}

namespace {

// The reference for a whole quantized layer execution: plain autograd over the float op applied to quantized
// leaves, fed the quantized output gradient.
struct QuantizedOperands {
  at::Tensor x, w, b;
};

QuantizedOperands quantized_leaves(const at::Tensor& xq, const at::Tensor& wq, const at::Tensor& b) {
  return {xq.detach().clone().requires_grad_(), wq.detach().clone().requires_grad_(),
          b.defined() ? b.detach().clone().requires_grad_() : at::Tensor()};
}

}  // namespace

TEST(QConv2d, GradientsEqualAutogradOverQuantizedOperandsBitForBit) {
  // Bias, groups and stride: the layer's backward must make exactly the call autograd makes for conv2d.
  torch::manual_seed(13);
  QConv2dOptions o;
  o.in_channels = 4;
  o.out_channels = 6;
  o.stride = 2;
  o.padding = 1;
  o.groups = 2;
  o.bias = true;
  auto conv = std::make_shared<QConv2d>(o);
  conv->set_layer_index(3);
  QuantizerSettings settings;
  settings.noise_seed = 77;
  conv->set_quantizer_settings(settings);
  conv->train();
  torch::nn::init::normal_(conv->bias());
  at::Tensor x = torch::randn({3, 4, 9, 7}, torch::requires_grad());
  at::Tensor y = conv->forward(x, LayerPrecision::uniform(Precision::fw_bw(6, 8)), 4);
  const at::Tensor g = torch::randn(y.sizes());
  y.backward(g);

  auto ref = quantized_leaves(fake_quantize(x.detach(), 6, tensor_range(x.detach())),
                              fake_quantize_per_channel(conv->weight().detach(), 6), conv->bias());
  at::Tensor y_ref = torch::conv2d(ref.x, ref.w, ref.b, 2, 1, 1, 2);
  y_ref.backward(expected_gradient(g, 8, 3, 4));
  EXPECT_TRUE(torch::equal(y, y_ref));
  EXPECT_TRUE(torch::equal(x.grad(), ref.x.grad()));
  EXPECT_TRUE(torch::equal(conv->weight().grad(), ref.w.grad()));
  EXPECT_TRUE(torch::equal(conv->bias().grad(), ref.b.grad()));
}

TEST(QConv2d, PerSampleWidthsInTheBackwardPass) {
  torch::manual_seed(14);
  auto conv = make_conv(2, 3, 3);
  conv->train();
  at::Tensor x = torch::randn({3, 2, 5, 5}, torch::requires_grad());
  const auto lp = LayerPrecision::per_sample(8, {2, 0, 6}, {6, 0, 12});
  at::Tensor y = conv->forward(x, lp, 9);
  const at::Tensor g = torch::randn(y.sizes());
  y.backward(g);

  QuantizeOptions stochastic;
  stochastic.rounding = Rounding::Stochastic;
  stochastic.noise = PhiloxStream{77, mix_stream(3, 9)};
  const at::Tensor gq = fake_quantize_rows(g, {6, 0, 12}, tensor_range(g), stochastic);
  auto ref = quantized_leaves(fake_quantize_rows(x.detach(), {2, 0, 6}, tensor_range(x.detach())),
                              fake_quantize_per_channel(conv->weight().detach(), 8), {});
  torch::conv2d(ref.x, ref.w, {}, 1, 1).backward(gq);
  EXPECT_TRUE(torch::equal(x.grad(), ref.x.grad()));
  EXPECT_TRUE(torch::equal(conv->weight().grad(), ref.w.grad()));
}

TEST(QConv2d, QuantizesOnlyWhatThePrecisionSays) {
  // Activations only (weights and gradients FP32), then weights only.
  torch::manual_seed(15);
  auto conv = make_conv(2, 2, 3);
  conv->train();
  for (const Precision& p : {Precision{5, 0, 0, false}, Precision{0, 5, 0, false}}) {
    conv->weight().mutable_grad().reset();
    at::Tensor x = torch::randn({2, 2, 6, 6}, torch::requires_grad());
    at::Tensor y = conv->forward(x, LayerPrecision::uniform(p), 0);
    const at::Tensor g = torch::randn(y.sizes());
    y.backward(g);
    const at::Tensor xq = p.act ? fake_quantize(x.detach(), p.act, tensor_range(x.detach())) : x.detach();
    const at::Tensor wq = p.weight ? fake_quantize_per_channel(conv->weight().detach(), p.weight)
                                   : conv->weight().detach();
    auto ref = quantized_leaves(xq, wq, {});
    torch::conv2d(ref.x, ref.w, {}, 1, 1).backward(g);
    EXPECT_TRUE(torch::equal(x.grad(), ref.x.grad())) << to_string(p);
    EXPECT_TRUE(torch::equal(conv->weight().grad(), ref.w.grad())) << to_string(p);
  }
}

TEST(QConv2d, FrozenWeightOrConstantInputGetNoGradient) {
  torch::manual_seed(16);
  auto conv = make_conv(2, 2, 3);
  conv->train();
  const auto p = LayerPrecision::uniform(Precision::fw_bw(8, 8));
  at::Tensor constant_input = torch::randn({1, 2, 4, 4});
  conv->forward(constant_input, p, 0).sum().backward();
  EXPECT_TRUE(conv->weight().grad().defined());
  conv->weight().mutable_grad().reset();
  conv->weight().set_requires_grad(false);
  at::Tensor x = torch::randn({1, 2, 4, 4}, torch::requires_grad());
  conv->forward(x, p, 0).sum().backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_FALSE(conv->weight().grad().defined());
}

TEST(QConv2d, InputModifiedInPlaceBeforeBackwardIsAnError) {
  // The backward pass requantizes the saved input, so it must notice if the input changed (as autograd does
  // for a float convolution) rather than differentiate at the wrong point.
  auto conv = make_conv(2, 2, 3);
  conv->train();
  at::Tensor a = torch::randn({1, 2, 4, 4}, torch::requires_grad());
  at::Tensor x = a * 1.0;
  at::Tensor y = conv->forward(x, LayerPrecision::uniform(Precision::fw_bw(8, 8)), 0);
  x.add_(1.0);
  EXPECT_ANY_THROW(y.sum().backward());
}

TEST(QConv2d, DoubleBackwardIsRefusedClearly) {
  auto conv = make_conv(2, 2, 3);
  conv->train();
  at::Tensor x = torch::randn({1, 2, 4, 4}, torch::requires_grad());
  at::Tensor y = conv->forward(x, LayerPrecision::uniform(Precision::fw_bw(8, 8)), 0);
  EXPECT_ANY_THROW(torch::autograd::grad({y.sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true));
}

TEST(QLinear, TokenInputsAndBiasMatchAutogradOverQuantizedOperands) {
  torch::manual_seed(17);
  QLinear fc(5, 4);
  fc.set_layer_index(2);
  fc.train();
  at::Tensor x = torch::randn({2, 3, 5}, torch::requires_grad());
  at::Tensor y = fc.forward(x, LayerPrecision::uniform(Precision::fw_bw(8, 6)), 1);
  const at::Tensor g = torch::randn(y.sizes());
  y.backward(g);
  QuantizeOptions stochastic;
  stochastic.rounding = Rounding::Stochastic;
  stochastic.noise = PhiloxStream{0, mix_stream(2, 1)};
  auto ref = quantized_leaves(fake_quantize(x.detach(), 8, tensor_range(x.detach())),
                              fake_quantize_per_channel(fc.weight().detach(), 8), fc.bias());
  torch::linear(ref.x, ref.w, ref.b).backward(fake_quantize(g, 6, tensor_range(g), stochastic));
  EXPECT_TRUE(torch::allclose(x.grad(), ref.x.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(fc.weight().grad(), ref.w.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(fc.bias().grad(), ref.b.grad(), 1e-5, 1e-6));
}

TEST(QConv2d, TwoLayersEqualTheStraightThroughCompositionBitForBit) {
  // The layer's single backward node (requantized input in shared scratch memory, in-place gradient
  // quantization) against the same two-layer network built from the quantizer's autograd pieces, which keep
  // every quantized operand.
  torch::manual_seed(18);
  auto conv1 = make_conv(2, 3, 3);
  auto conv2 = make_conv(3, 5, 3);
  conv2->set_layer_index(4);
  conv1->train();
  conv2->train();
  const auto p = LayerPrecision::uniform(Precision::fw_bw(6, 8));
  at::Tensor x = torch::randn({4, 2, 7, 7}, torch::requires_grad());
  at::Tensor out = conv2->forward(torch::relu(conv1->forward(x, p, 5)), p, 5);
  const at::Tensor g = torch::randn(out.sizes());
  out.backward(g);

  auto layer = [](const at::Tensor& in, const at::Tensor& w, uint64_t index) {
    const at::Tensor xq = straight_through(in, fake_quantize(in.detach(), 6, tensor_range(in.detach())));
    const at::Tensor wq = straight_through(w, fake_quantize_per_channel(w.detach(), 6));
    GradientQuantization spec;
    spec.bits = 8;
    spec.noise = PhiloxStream{77, mix_stream(index, 5)};
    return quantize_gradient_in_backward(torch::conv2d(xq, wq, {}, 1, 1), spec);
  };
  at::Tensor x_ref = x.detach().clone().requires_grad_();
  at::Tensor w1 = conv1->weight().detach().clone().requires_grad_();
  at::Tensor w2 = conv2->weight().detach().clone().requires_grad_();
  at::Tensor out_ref = layer(torch::relu(layer(x_ref, w1, 3)), w2, 4);
  out_ref.backward(g);
  EXPECT_TRUE(torch::equal(out, out_ref));
  EXPECT_TRUE(torch::equal(x.grad(), x_ref.grad()));
  EXPECT_TRUE(torch::equal(conv1->weight().grad(), w1.grad()));
  EXPECT_TRUE(torch::equal(conv2->weight().grad(), w2.grad()));
}

namespace {

// The error pass's weight under ErrorWeightRanges::PerInputChannel, written out group by group: each group's
// output channels [O/g, I/g, ...] quantized with one range per input channel of that group.
at::Tensor per_layer_input_channel(const at::Tensor& w, int bits, int64_t groups, bool snap) {
  QuantizeOptions o;
  o.snap_zero_point = snap;
  std::vector<at::Tensor> parts;
  for (const at::Tensor& part : w.chunk(groups, 0)) parts.push_back(fake_quantize_per_input_channel(part, bits, o));
  return at::cat(parts, 0);
}

std::shared_ptr<QConv2d> conv_with(const QConv2dOptions& o, ErrorWeightRanges ranges, bool snap) {
  auto conv = std::make_shared<QConv2d>(o);
  conv->set_layer_index(3);
  QuantizerSettings settings;
  settings.noise_seed = 77;
  settings.snap_zero_point = snap;
  settings.error_weight_ranges = ranges;
  conv->set_quantizer_settings(settings);
  conv->train();
  return conv;
}

struct ConvRun {
  at::Tensor y, dx, dw, db;
};

ConvRun run_conv(QConv2d& conv, const at::Tensor& x_value, const at::Tensor& g, const LayerPrecision& p,
                 bool input_needs_grad = true) {
  conv.zero_grad();
  at::Tensor x = x_value.clone().requires_grad_(input_needs_grad);
  at::Tensor y = conv.forward(x, p, 4);
  y.backward(g);
  return {y.detach(), input_needs_grad ? x.grad() : at::Tensor(), conv.weight().grad().clone(),
          conv.bias().defined() ? conv.bias().grad().clone() : at::Tensor()};
}

}  // namespace

TEST(QConv2d, PerInputChannelErrorWeightQuantizesOnlyTheErrorPass) {
  // Plain, grouped and depthwise convs, with and without snapped zero points: dX is the float conv backward of
  // Q(dY) with the weight quantized per input channel of the layer; y and dW are those of a per-output-channel run.
  struct Case {
    int64_t in, out, groups;
  };
  for (const Case c : {Case{4, 6, 1}, Case{4, 6, 2}, Case{6, 6, 6}}) {
    for (bool snap : {false, true}) {
      SCOPED_TRACE("groups " + std::to_string(c.groups) + (snap ? ", snapped" : ""));
      torch::manual_seed(19);
      QConv2dOptions o = QConv2dOptions::same(c.in, c.out, 3, 2, c.groups);
      o.bias = true;
      auto per_output = conv_with(o, ErrorWeightRanges::PerOutputChannel, snap);
      auto per_input = conv_with(o, ErrorWeightRanges::PerInputChannel, snap);
      {
        torch::NoGradGuard no_grad;
        per_output->weight().select(1, 0).mul_(20);  // input channel 0 of each group much wider than the rest
        per_output->bias().normal_();
        per_input->weight().copy_(per_output->weight());
        per_input->bias().copy_(per_output->bias());
      }
      const at::Tensor x = torch::randn({3, c.in, 7, 6});
      const at::Tensor g = torch::randn({3, c.out, 4, 3});
      const auto p = LayerPrecision::uniform(Precision::fw_bw(4, 6));
      const ConvRun a = run_conv(*per_output, x, g, p);
      const ConvRun b = run_conv(*per_input, x, g, p);
      EXPECT_TRUE(torch::equal(a.y, b.y));
      EXPECT_TRUE(torch::equal(a.dw, b.dw));
      EXPECT_TRUE(torch::equal(a.db, b.db));

      QuantizeOptions snapped;
      snapped.snap_zero_point = snap;
      const at::Tensor w = per_input->weight().detach();
      const at::Tensor w_error = per_layer_input_channel(w, 4, c.groups, snap);
      if (c.groups == c.in) {  // depthwise: each input channel is its output channel
        EXPECT_TRUE(torch::equal(w_error, fake_quantize_per_channel(w, 4, snapped)));
      }
      const at::Tensor xq = fake_quantize(x, 4, tensor_range(x), snapped);
      const std::array<int64_t, 1> bias_sizes{c.out};
      QuantizeOptions stochastic = snapped;
      stochastic.rounding = Rounding::Stochastic;
      stochastic.noise = PhiloxStream{77, mix_stream(3, 4)};
      const at::Tensor gq = fake_quantize(g, 6, tensor_range(g), stochastic);
      const auto expected = at::convolution_backward(gq, xq, w_error, at::OptionalIntArrayRef(bias_sizes), {2, 2},
                                                     {1, 1}, {1, 1}, false, {0, 0}, c.groups, {true, true, true});
      EXPECT_TRUE(torch::equal(b.dx, std::get<0>(expected)));
      EXPECT_TRUE(torch::equal(b.dw, std::get<1>(expected)));
      // The per-output-channel run's dX is that of the forward's Q(W), which differs.
      const at::Tensor w_forward = fake_quantize_per_channel(w, 4, snapped);
      const auto forward_weight = at::convolution_backward(gq, xq, w_forward, at::OptionalIntArrayRef(bias_sizes),
                                                           {2, 2}, {1, 1}, {1, 1}, false, {0, 0}, c.groups,
                                                           {true, true, true});
      EXPECT_TRUE(torch::equal(a.dx, std::get<0>(forward_weight)));
      if (c.groups == c.in) {
        EXPECT_TRUE(torch::equal(a.dx, b.dx));
      } else {
        EXPECT_FALSE(torch::allclose(a.dx, b.dx, 1e-3, 1e-3));
      }
    }
  }
}

TEST(QConv2d, PerInputChannelErrorWeightWithoutWeightBitsOrDxChangesNothing) {
  torch::manual_seed(20);
  const QConv2dOptions o = QConv2dOptions::same(3, 4, 3);
  auto per_output = conv_with(o, ErrorWeightRanges::PerOutputChannel, false);
  auto per_input = conv_with(o, ErrorWeightRanges::PerInputChannel, false);
  {
    torch::NoGradGuard no_grad;
    per_input->weight().copy_(per_output->weight());
  }
  const at::Tensor x = torch::randn({2, 3, 5, 5});
  const at::Tensor g = torch::randn({2, 4, 5, 5});
  // FP32 weights (activations and gradients quantized): the error pass multiplies the FP32 weight either way.
  const auto fp32_weights = LayerPrecision::uniform(Precision{5, 0, 8, false});
  const ConvRun a = run_conv(*per_output, x, g, fp32_weights);
  const ConvRun b = run_conv(*per_input, x, g, fp32_weights);
  EXPECT_TRUE(torch::equal(a.dx, b.dx));
  EXPECT_TRUE(torch::equal(a.dw, b.dw));
  // An input without gradient (a first layer): no dX, and dW as ever.
  const auto p = LayerPrecision::uniform(Precision::fw_bw(4, 8));
  EXPECT_TRUE(torch::equal(run_conv(*per_output, x, g, p, false).dw, run_conv(*per_input, x, g, p, false).dw));
}

TEST(QLinear, PerInputChannelErrorWeightQuantizesOnlyTheErrorPass) {
  for (bool snap : {false, true}) {
    torch::manual_seed(21);
    QLinear per_output(6, 5), per_input(6, 5);
    for (QLinear* fc : {&per_output, &per_input}) {
      fc->set_layer_index(2);
      QuantizerSettings settings;
      settings.noise_seed = 77;
      settings.snap_zero_point = snap;
      settings.error_weight_ranges =
          fc == &per_input ? ErrorWeightRanges::PerInputChannel : ErrorWeightRanges::PerOutputChannel;
      fc->set_quantizer_settings(settings);
      fc->train();
    }
    {
      torch::NoGradGuard no_grad;
      per_output.weight().select(1, 2).mul_(30);
      per_input.weight().copy_(per_output.weight());
      per_input.bias().copy_(per_output.bias());
    }
    const at::Tensor x = torch::randn({2, 3, 6});  // tokens
    const at::Tensor g = torch::randn({2, 3, 5});
    const auto p = LayerPrecision::uniform(Precision::fw_bw(5, 8));
    std::vector<std::array<at::Tensor, 4>> runs;
    for (QLinear* fc : {&per_output, &per_input}) {
      at::Tensor xi = x.clone().requires_grad_();
      at::Tensor y = fc->forward(xi, p, 1);
      y.backward(g);
      runs.push_back({y.detach(), xi.grad(), fc->weight().grad(), fc->bias().grad()});
    }
    EXPECT_TRUE(torch::equal(runs[0][0], runs[1][0]));
    EXPECT_TRUE(torch::equal(runs[0][2], runs[1][2]));
    EXPECT_TRUE(torch::equal(runs[0][3], runs[1][3]));
    QuantizeOptions o;
    o.snap_zero_point = snap;
    o.rounding = Rounding::Stochastic;
    o.noise = PhiloxStream{77, mix_stream(2, 1)};
    const at::Tensor gq = fake_quantize(g, 8, tensor_range(g), o);
    QuantizeOptions nearest;
    nearest.snap_zero_point = snap;
    const at::Tensor w = per_input.weight().detach();
    EXPECT_TRUE(torch::equal(runs[1][1], gq.matmul(fake_quantize_per_input_channel(w, 5, nearest))));
    EXPECT_TRUE(torch::equal(runs[0][1], gq.matmul(fake_quantize_per_channel(w, 5, nearest))));
    EXPECT_FALSE(torch::allclose(runs[0][1], runs[1][1], 1e-3, 1e-3));
  }
}
