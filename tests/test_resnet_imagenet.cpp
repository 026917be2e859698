// ImageNet ResNet-18/34 (He et al. 2016, Table 1): parameter counts and forward MACs at 224x224 match the
// published figures, the network trains at FW-8/BW-8, and its gated form makes one decision per block and
// sample.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/models/model_profile.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/precision/static_plan.h"
#include "model_test_support.h"

using namespace fractrain;

TEST(ResNetImageNet, ParametersAndMacsMatchThePublishedFigures) {
  const ModelInputSpec imagenet{3, 224, 224, 1000};
  auto r18 = create_model("resnet18", imagenet);
  auto r34 = create_model("resnet34", imagenet);
  // torchvision's counts (convolutions without bias, BN affine, FC with bias).
  EXPECT_EQ(test_support::parameter_count(*r18), 11689512);
  EXPECT_EQ(test_support::parameter_count(*r34), 21797672);
  // Forward MACs: 1.8 G and 3.6 G (conv and FC layers; the paper's Table 1 gives 1.8 and 3.6 GFLOPs = MACs).
  const ModelProfile p18 = profile_model(*r18, imagenet), p34 = profile_model(*r34, imagenet);
  EXPECT_NEAR(static_cast<double>(p18.forward_macs()), 1.814e9, 0.002e9);
  EXPECT_NEAR(static_cast<double>(p34.forward_macs()), 3.664e9, 0.004e9);
  // The stem: 7x7x3 weights per output, 64 channels, 112x112 outputs.
  EXPECT_EQ(p18.layers().front().name, "stem");
  EXPECT_EQ(p18.layers().front().macs_per_sample, int64_t{7 * 7 * 3} * 64 * 112 * 112);
  EXPECT_EQ(r34->quantized_layers().size(), 1u + 2 * 16 + 3 + 1);  // stem, 16 blocks, 3 projections, fc
}

TEST(ResNetImageNet, TrainsAtFw8Bw8WithFallingLoss) {
  const auto losses = test_support::fw8bw8_losses_on_one_batch("resnet18", ModelInputSpec{3, 64, 64, 10}, 8, 8);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

TEST(ResNetImageNet, GatedFormDecidesPerBlockAndSample) {
  const ModelInputSpec input{3, 64, 64, 10};
  auto model = create_gated_model("resnet34", input, OptionSet::parse("imagenet-release", 0), GateExecution::Mixed);
  model->train();
  const auto gating = model->run(torch::randn({3, 3, 64, 64}), PrecisionPlan::uniform(Precision::full())).decisions;
  ASSERT_EQ(gating.size(), 16u);
  for (const auto& g : gating) {
    EXPECT_EQ(g.options.sizes(), (std::vector<int64_t>{3}));
    EXPECT_EQ(g.mask.sizes(), (std::vector<int64_t>{3, 4}));
  }
  EXPECT_EQ(gating.back().block, "stage4.2");
}
