// MobileNetV2 (CIFAR variant): parameter and MAC counts against a hand count from the paper's stage table (and
// torchvision's published 3,504,872 parameters at 1000 classes), the fixed FW-8/BW-16 of depthwise layers, and a
// few FW-8/BW-8 training steps with falling loss.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/models/mobilenet_v2.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/precision/static_plan.h"
#include "model_test_support.h"

using namespace fractrain;

namespace {

struct Count {
  int64_t parameters = 0, macs = 0;
};

// From Sandler et al. 2018, Table 2 with the CIFAR strides: conv weights, BN (2 per channel), FC with bias.
Count hand_count(int64_t channels, int64_t size, int64_t classes) {
  Count c;
  int64_t h = size, in = 32;
  c.parameters += channels * 32 * 9 + 2 * 32;
  c.macs += h * h * 32 * channels * 9;
  const int64_t table[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 1}, {6, 32, 3, 2}, {6, 64, 4, 2},
                               {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  for (const auto& row : table) {
    for (int64_t i = 0; i < row[2]; ++i) {
      const int64_t t = row[0], out = row[1], stride = i == 0 ? row[3] : 1, hidden = in * t;
      const int64_t h_out = (h - 1) / stride + 1;
      if (t != 1) {
        c.parameters += in * hidden + 2 * hidden;
        c.macs += h * h * in * hidden;
      }
      c.parameters += 9 * hidden + 2 * hidden + hidden * out + 2 * out;
      c.macs += h_out * h_out * hidden * 9 + h_out * h_out * hidden * out;
      h = h_out;
      in = out;
    }
  }
  c.parameters += 320 * 1280 + 2 * 1280 + 1280 * classes + classes;
  c.macs += h * h * 320 * 1280 + 1280 * classes;
  return c;
}

}  // namespace

TEST(MobileNetV2, ParametersAndMacsMatchHandCounts) {
  const ModelInputSpec cifar{3, 32, 32, 10};
  auto model = create_model("mobilenetv2", cifar);
  const Count expected = hand_count(3, 32, 10);
  EXPECT_EQ(test_support::parameter_count(*model), expected.parameters);
  EXPECT_EQ(profile_model(*model, cifar).forward_macs(), expected.macs);
  // Strides do not change parameters: at 1000 classes this is torchvision's MobileNetV2 (3.5 M).
  auto imagenet_head = create_model("mobilenetv2", ModelInputSpec{3, 32, 32, 1000});
  EXPECT_EQ(test_support::parameter_count(*imagenet_head), 3504872);
  // 17 blocks: 16 expansions, 17 depthwise, 17 projections, plus stem, last conv and classifier.
  EXPECT_EQ(model->quantized_layers().size(), 16u + 17 + 17 + 3);
}

TEST(MobileNetV2, DepthwiseLayersRunAtFw8Bw16InQuantizedRuns) {
  auto model = create_model("mobilenetv2", ModelInputSpec{3, 32, 32, 10});
  const PrecisionPlan low = make_static_plan(*model, Precision::fw_bw(4, 8), {});
  const PrecisionPlan fp32 = make_static_plan(*model, Precision::full(), {});
  int depthwise = 0;
  for (const auto& layer : model->quantized_layers()) {
    const LayerPrecision& p = low.for_layer(layer->layer_name());
    if (layer->kind() == LayerKind::DepthwiseConv) {
      ++depthwise;
      EXPECT_EQ(p.for_sample(0), Precision::fw_bw(8, 16)) << layer->layer_name();
    } else if (layer->layer_name() != model->classifier_name()) {
      EXPECT_EQ(p.for_sample(0), Precision::fw_bw(4, 8)) << layer->layer_name();
    }
    EXPECT_TRUE(fp32.for_layer(layer->layer_name()).for_sample(0).is_full()) << layer->layer_name();
  }
  EXPECT_EQ(depthwise, 17);
}

TEST(MobileNetV2, TrainsAtFw8Bw8WithFallingLoss) {
  const auto losses = test_support::fw8bw8_losses_on_one_batch("mobilenetv2", ModelInputSpec{3, 32, 32, 10}, 16, 10);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}
