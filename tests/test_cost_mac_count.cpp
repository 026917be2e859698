// MAC counts against hand counts: single layers as they report themselves when executed, attention matmuls, and
// whole CIFAR ResNets through the cost profile (which also measures every layer's operand sizes).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/cost/mac_count.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"

using namespace fractrain;

namespace {

struct LastExecution : CostObserver {
  int64_t macs = -1, batch = -1;
  LayerKind kind = LayerKind::Linear;
  void on_layer(const LayerExecution& e) override {
    macs = e.macs_per_sample;
    batch = e.batch;
    kind = e.kind;
  }
};

LastExecution run_layer(QuantizedLayer& layer, const at::Tensor& input) {
  LastExecution seen;
  layer.set_cost_observer(&seen);
  torch::NoGradGuard no_grad;
  layer.forward(input, LayerPrecision::uniform(Precision::full()), 0);
  return seen;
}

std::shared_ptr<QConv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups) {
  return std::make_shared<QConv2d>(QConv2dOptions::same(in, out, kernel, stride, groups));
}

ModelProfile profile_of(const std::string& name, const ModelInputSpec& input) {
  auto model = create_model(name, input);
  return profile_model(*model, input);
}

const LayerProfile& layer(const ModelProfile& p, const std::string& name) {
  const int64_t i = p.index_of(name);
  EXPECT_GE(i, 0) << name;
  return p.layers().at(static_cast<size_t>(std::max<int64_t>(i, 0)));
}

}  // namespace

TEST(CostMacCount, SingleConvolution) {
  // 16 outputs of 3x3 over 3 channels at each of 32x32 positions.
  EXPECT_EQ(conv2d_macs(3, 16, 3, 3, 32, 32), 16 * 32 * 32 * 3 * 9);
  auto c = conv(3, 16, 3, 1, 1);
  const LastExecution seen = run_layer(*c, torch::randn({2, 3, 32, 32}));
  EXPECT_EQ(seen.macs, 442368);
  EXPECT_EQ(seen.batch, 2);
  EXPECT_EQ(seen.kind, LayerKind::Conv);
  // Stride 2 halves each output side: 32 outputs x 16 x 16 positions x 16 channels x 3 x 3.
  EXPECT_EQ(run_layer(*conv(16, 32, 3, 2, 1), torch::randn({1, 16, 32, 32})).macs, 32 * 16 * 16 * 16 * 9);
  // Odd input with stride 2: 7x7 -> 4x4 (padding 1).
  EXPECT_EQ(run_layer(*conv(8, 8, 3, 2, 1), torch::randn({1, 8, 7, 7})).macs, 8 * 4 * 4 * 8 * 9);
}

TEST(CostMacCount, DepthwiseAndGroupedConvolutions) {
  // Depthwise: one 3x3 filter per channel, 32 channels at 16x16.
  EXPECT_EQ(conv2d_macs(32, 32, 3, 3, 16, 16, 32), 32 * 16 * 16 * 9);
  const LastExecution seen = run_layer(*conv(32, 32, 3, 1, 32), torch::randn({1, 32, 16, 16}));
  EXPECT_EQ(seen.macs, 73728);
  EXPECT_EQ(seen.kind, LayerKind::DepthwiseConv);
  // Stride-2 depthwise: 8x8 outputs.
  EXPECT_EQ(run_layer(*conv(32, 32, 3, 2, 32), torch::randn({1, 32, 16, 16})).macs, 32 * 8 * 8 * 9);
  // Two groups: each output sums over half the input channels.
  EXPECT_EQ(run_layer(*conv(8, 4, 1, 1, 2), torch::randn({1, 8, 5, 5})).macs, 4 * 25 * 4);
}

TEST(CostMacCount, LinearLayers) {
  EXPECT_EQ(linear_macs(64, 10), 640);
  QLinear fc(64, 10);
  const LastExecution seen = run_layer(fc, torch::randn({3, 64}));
  EXPECT_EQ(seen.macs, 640);
  EXPECT_EQ(seen.kind, LayerKind::Linear);
  // 5 tokens per sample: 5 x 64 x 10.
  EXPECT_EQ(run_layer(fc, torch::randn({3, 5, 64})).macs, 3200);
}

TEST(CostMacCount, AttentionMatmulsPerSequence) {
  // Transformer-base: 8 heads of 64, 128 tokens attending to 128. Q K^T: 8 x 128 x 128 x 64; A V the same.
  const AttentionMacs a = attention_macs(128, 128, 8, 64);
  EXPECT_EQ(a.scores, 8LL * 128 * 128 * 64);
  EXPECT_EQ(a.context, 8LL * 128 * 128 * 64);
  EXPECT_EQ(a.total(), 2LL * 128 * 128 * 512);
  // Cross-attention over a longer memory: both matmuls scale with query x key length.
  const AttentionMacs cross = attention_macs(10, 30, 2, 16);
  EXPECT_EQ(cross.scores, 2 * 10 * 30 * 16);
  EXPECT_EQ(cross.total(), 2 * 2 * 10 * 30 * 16);
  EXPECT_STREQ(to_string(LayerKind::Attention), "attention");
}

TEST(CostMacCount, ResNet20And38AtCifarSize) {
  const ModelProfile r20 = profile_of("resnet20", {3, 32, 32, 10});
  // stem 442368; stage1 6 x 2359296; stage2 and 3 each 1179648 + 5 x 2359296 + 131072 (1x1 shortcut); fc 640.
  EXPECT_EQ(r20.forward_macs(), 442368 + 6LL * 2359296 + 2 * (1179648 + 5LL * 2359296 + 131072) + 640);
  EXPECT_EQ(r20.forward_macs(), 40813184);
  EXPECT_EQ(r20.layers().size(), 22u);
  EXPECT_EQ(r20.forward_macs(LayerRole::Stem), 442368);
  EXPECT_EQ(r20.forward_macs(LayerRole::Classifier), 640);
  EXPECT_EQ(r20.forward_macs(LayerRole::Block), 40813184 - 442368 - 640);

  const ModelProfile r38 = profile_of("resnet38", {3, 32, 32, 10});
  EXPECT_EQ(r38.forward_macs(), 442368 + 12LL * 2359296 + 2 * (1179648 + 11LL * 2359296 + 131072) + 640);
  EXPECT_EQ(r38.forward_macs(), 83280512);
  EXPECT_EQ(r38.layers().size(), 40u);

  // The paper's ResNet-74 (projection shortcuts): about 1.682e8.
  EXPECT_EQ(profile_of("resnet74", {3, 32, 32, 10}).forward_macs(),
            442368 + 24LL * 2359296 + 2 * (1179648 + 23LL * 2359296 + 131072) + 640);
}

TEST(CostMacCount, ProfileMeasuresOperandSizesAndRoles) {
  const ModelProfile p = profile_of("resnet20", {3, 32, 32, 10});
  const LayerProfile& stem = layer(p, "stem");
  EXPECT_EQ(stem.role, LayerRole::Stem);
  EXPECT_FALSE(stem.error_backward_runs);  // its input is the data
  EXPECT_EQ(stem.weight_elements, 16 * 3 * 9);
  EXPECT_EQ(stem.weight_shape, (std::vector<int64_t>{16, 3, 3, 3}));
  EXPECT_EQ(stem.input_elements, 3 * 32 * 32);
  EXPECT_EQ(stem.output_elements, 16 * 32 * 32);
  EXPECT_EQ(stem.output_positions, 1024);

  const LayerProfile& down = layer(p, "stage2.0.conv1");  // stride 2: reads 16x32x32, writes 32x16x16
  EXPECT_EQ(down.role, LayerRole::Block);
  EXPECT_TRUE(down.error_backward_runs);
  EXPECT_EQ(down.input_elements, 16 * 32 * 32);
  EXPECT_EQ(down.output_elements, 32 * 16 * 16);
  const LayerProfile& shortcut = layer(p, "stage3.0.shortcut_conv");
  EXPECT_EQ(shortcut.weight_elements, 64 * 32);
  EXPECT_EQ(shortcut.input_elements, 32 * 16 * 16);
  EXPECT_EQ(shortcut.output_elements, 64 * 8 * 8);
  const LayerProfile& fc = layer(p, "fc");
  EXPECT_EQ(fc.role, LayerRole::Classifier);
  EXPECT_EQ(fc.input_elements, 64);
  EXPECT_EQ(fc.output_elements, 10);
  EXPECT_EQ(p.index_of("no.such.layer"), -1);

  // Fashion-MNIST size: 28 -> 14 -> 7, so the last stage's first conv reads 32x14x14.
  const ModelProfile f = profile_of("resnet20", {1, 28, 28, 10});
  EXPECT_EQ(layer(f, "stem").input_elements, 28 * 28);
  EXPECT_EQ(layer(f, "stage3.0.conv1").input_elements, 32 * 14 * 14);
  EXPECT_EQ(layer(f, "stage3.0.conv1").output_elements, 64 * 7 * 7);
}

TEST(CostMacCount, ProfilingLeavesTheModelAsItWas) {
  const ModelInputSpec input{3, 16, 16, 10};
  auto model = create_model("resnet8", input);
  model->train();
  const auto before = model->named_buffers();
  std::vector<at::Tensor> copies;
  for (const auto& b : before) copies.push_back(b.value().clone());
  profile_model(*model, input);
  EXPECT_TRUE(model->is_training());
  size_t i = 0;
  for (const auto& b : model->named_buffers()) EXPECT_TRUE(torch::equal(b.value(), copies[i++])) << b.key();
}
