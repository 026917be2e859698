// CIFAR ResNet structure against hand counts: parameters, per-layer MACs, layer naming, any input size.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/models/model_registry.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/util/error.h"

using namespace fractrain;

namespace {

struct MacTally : CostObserver {
  int64_t total = 0;
  int layers = 0;
  void on_layer(const LayerExecution& e) override {
    total += e.macs_per_sample;
    ++layers;
  }
};

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

int64_t forward_macs(QuantizedModel& model, const ModelInputSpec& in, int* layers = nullptr) {
  MacTally tally;
  model.set_cost_observer(&tally);
  torch::NoGradGuard no_grad;
  model.eval();
  model.forward(torch::randn({1, in.channels, in.height, in.width}), PrecisionPlan::uniform(Precision::full()));
  model.set_cost_observer(nullptr);
  if (layers) *layers = tally.layers;
  return tally.total;
}

}  // namespace

TEST(ResNetCifar, ResNet20MatchesHandCounts) {
  ModelInputSpec in{3, 32, 32, 10};
  auto model = create_model("resnet20", in);
  // Convs 432 + 13824 + (4608 + 46080 + 512) + (18432 + 184320 + 2048), BN 2 x (16 x 7 + 32 x 7 + 64 x 7),
  // FC 64 x 10 + 10.
  EXPECT_EQ(parameter_count(*model), 272474);
  int layers = 0;
  // stem 442368; stage1 6 x 2359296; stage2 1179648 + 5 x 2359296 + 131072 (1x1 shortcut); stage3 the same;
  // fc 640.
  EXPECT_EQ(forward_macs(*model, in, &layers), 40813184);
  EXPECT_EQ(layers, 19 + 2 + 1);
  EXPECT_EQ(model->quantized_layers().size(), 22u);
  EXPECT_EQ(model->first_layer_name(), "stem");
  EXPECT_EQ(model->classifier_name(), "fc");
  EXPECT_EQ(model->quantized_layers()[1]->layer_name(), "stage1.0.conv1");
}

TEST(ResNetCifar, ResNet38HasTheRightDepth) {
  ModelInputSpec in{3, 32, 32, 100};
  auto model = create_model("resnet38", in);
  // 6 x 6 + 1 convs + 2 projection shortcuts + fc.
  EXPECT_EQ(model->quantized_layers().size(), 37u + 2 + 1);
  // stem 442368 + stage1 12 x 2359296 + stage2/3 each (1179648 + 11 x 2359296 + 131072) + fc 6400.
  EXPECT_EQ(forward_macs(*model, in), 442368 + 12LL * 2359296 + 2 * (1179648 + 11LL * 2359296 + 131072) + 6400);
}

TEST(ResNetCifar, AcceptsAnyChannelCountAndImageSize) {
  ModelInputSpec in{1, 28, 28, 10};
  auto model = create_model("resnet20", in);
  model->eval();
  torch::NoGradGuard no_grad;
  at::Tensor out = model->forward(torch::randn({3, 1, 28, 28}), PrecisionPlan::uniform(Precision::fw_bw(8, 8)));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{3, 10}));
  // Odd sizes: 28 -> 14 -> 7 in the stages.
  EXPECT_EQ(forward_macs(*model, in), 28 * 28 * 16 * 9 + 6LL * 28 * 28 * 16 * 16 * 9 + 14 * 14 * 32 * 16 * 9 +
                                          5LL * 14 * 14 * 32 * 32 * 9 + 14 * 14 * 32 * 16 + 7 * 7 * 64 * 32 * 9 +
                                          5LL * 7 * 7 * 64 * 64 * 9 + 7 * 7 * 64 * 32 + 640);
}

TEST(ResNetCifar, StaticPlanKeepsStemAndClassifierByPolicy) {
  auto model = create_model("resnet20", ModelInputSpec{});
  QuantizationPolicy policy;
  PrecisionPlan plan = make_static_plan(*model, Precision::fw_bw(8, 8), policy);
  EXPECT_EQ(plan.for_layer("stem").act_bits(), 8);
  EXPECT_EQ(plan.for_layer("fc").act_bits(), 0);
  EXPECT_EQ(plan.for_layer("stage3.2.conv2").grad_bits(), 8);
  policy.quantize_first_layer = false;
  policy.quantize_classifier = true;
  plan = make_static_plan(*model, Precision::fw_bw(8, 8), policy);
  EXPECT_EQ(plan.for_layer("stem").act_bits(), 0);
  EXPECT_EQ(plan.for_layer("fc").weight_bits(), 8);
}

TEST(ModelRegistry, UnknownNamesGetAHelpfulError) {
  try {
    create_model("resnet21", ModelInputSpec{});
    FAIL() << "expected an error";
  } catch (const fractrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet21"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("did you mean 'resnet20'"), std::string::npos);
  }
  EXPECT_THROW(create_model("vgg", ModelInputSpec{}), fractrain::Error);
  EXPECT_EQ(list_models().size(), 9u);  // 5 CIFAR ResNets, MobileNetV2, ResNet-18/34, transformer-lm
  EXPECT_NO_THROW(create_model("resnet56", ModelInputSpec{}));
}
