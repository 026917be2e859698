// QConv2d / QLinear: the three quantization points sit where DESIGN.md 4.1 puts them, and the backward pass
// computes exactly dX = conv_transpose(Q(dY), Q(W)) and dW = correlate(Q(X), Q(dY)).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"
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
