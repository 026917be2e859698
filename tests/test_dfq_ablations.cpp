// The option-set ablations of issue 19. "DFQ's weights at 8 bits": the layers run 8-bit weights while the gates'
// cost term and its sign count the 4-bit option set's costs (dfq.steering_weight_bits), so the gates face the
// same cost pressure and only the executed weights change; the reported cost counts the bits run. "The cheapest
// options removed": targets below the remaining options' floor are refused unless the run asks for them
// (dfq.allow_unreachable_targets).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/models/gated_model.h"
#include "fractrain/precision/dynamic_controller.h"
#include "fractrain/precision/gating_cost.h"
#include "fractrain/train/precision_schedule.h"
#include "fractrain/train/run_components.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

struct GatedForward {
  std::vector<BlockDecision> decisions;
  std::vector<std::vector<int64_t>> chosen;
};

// One training forward of a gated ResNet-8 whose layers run `options`.
GatedForward gated_forward(const OptionSet& options) {
  torch::manual_seed(3);
  const ModelInputSpec input{1, 12, 12, 10};
  GatedResNet model(options, GateExecution::Mixed, cifar_resnet_layout(8), input);
  model.train();
  ForwardResult result = model.run(torch::rand({6, 1, 12, 12}), PrecisionPlan::uniform(Precision::full()));
  GatedForward f;
  f.chosen = options_on_host(result.decisions);
  f.decisions = std::move(result.decisions);
  return f;
}

RunConfig fractrain_config(const std::string& options, int weight_bits) {
  RunConfig config;
  config.model.name = "resnet20";
  config.precision.mode = PrecisionMode::FracTrain;
  config.dfq.options = options;
  config.dfq.weight_bits = weight_bits;
  config.dfq.target_cp = 2.75;  // stages 2.0 / 2.5 / 3.0 / 3.5 %
  return config;
}

}  // namespace

TEST(DfqAblations, SteeringAtAnotherWidthSignsAndWeighsTheCostTermAtThatWidth) {
  const OptionSet executed = OptionSet::parse("cifar-release", 8);
  const OptionSet steering = executed.with_weight_bits(4);
  EXPECT_EQ(steering.weight_bits(), 4);
  EXPECT_NEAR(steering.relative_cost(0), (3 * 4 + 6 * 4 + 3 * 6) / 3072.0, 1e-15);  // 3/6 at w4
  const GatedForward f = gated_forward(executed);
  const double cp8 = blocks_cp(f.decisions, f.chosen, executed), cp4 = blocks_cp(f.decisions, f.chosen, steering);
  ASSERT_GT(cp8, cp4);
  // A target between the two: the layers' measured cp is above it, the 4-bit count below it.
  const double target = (cp4 + cp8) / 2;
  const StepCost measured{cp8 + 0.1, cp8, {}};

  CostSteering at4;
  at4.weight_bits = 4;
  auto steered =
      DynamicController::dfq(executed, PrecisionPlan::uniform(Precision::full()), target, at4, {"a", "b", "c"});
  EXPECT_EQ(steered->options().weight_bits(), 8);
  EXPECT_EQ(steered->steering_options().weight_bits(), 4);
  EXPECT_EQ(steered->precision().weight, 8);  // what the layers run
  EXPECT_NEAR(steered->steered_cp(f.decisions, f.chosen, measured), cp4, 1e-12);
  const at::Tensor term = steered->observe_step(f.decisions, measured);
  ASSERT_TRUE(term.defined());
  const double expected = -1e-3 * gating_cost(f.decisions, steering).item<double>();  // below target: spend more
  EXPECT_NEAR(term.item<double>(), expected, 1e-6 * std::abs(expected));
  // The statistics keep what ran.
  EXPECT_DOUBLE_EQ(steered->eval_window().cp_blocks(), cp8);
  EXPECT_CONTAINS(steered->describe(), "steering at w4");

  // Without a steering width the same batch is over the target at its measured cp.
  auto plain = DynamicController::dfq(executed, PrecisionPlan::uniform(Precision::full()), target, CostSteering{},
                                      {"a", "b", "c"});
  EXPECT_DOUBLE_EQ(plain->steered_cp(f.decisions, f.chosen, measured), cp8);
  const at::Tensor plain_term = plain->observe_step(f.decisions, measured);
  const double plain_expected = 1e-3 * gating_cost(f.decisions, executed).item<double>();
  EXPECT_NEAR(plain_term.item<double>(), plain_expected, 1e-6 * plain_expected);
  EXPECT_EQ(plain->describe().find("steering"), std::string::npos);
  // A checkpoint of one is not the other's.
  EXPECT_CONTAINS(error_of([&] { steered->restore(plain->state()); }), "steering at w4");

  // The steering width counts the gated blocks only.
  CostSteering network = at4;
  network.blocks_only = false;
  EXPECT_CONTAINS(error_of([&] {
                    DynamicController::dfq(executed, PrecisionPlan::uniform(Precision::full()), 3.0, network, {"a"});
                  }),
                  "set dfq.cp_scope = \"blocks\"");
}

TEST(DfqAblations, BlocksCpIsTheMetersCountAtTheWidthTheLayersRun) {
  // The hand count of DfqGatedResNet.OneDecisionPerBlockAndSampleAndTheMeterCountsThem, as a function.
  for (const char* preset : {"cifar-release", "cifar-paper"}) {  // with and without a skip option
    const OptionSet options = OptionSet::parse(preset, 0);
    const GatedForward f = gated_forward(options);
    double bit_macs = 0, fp32 = 0;
    for (size_t b = 0; b < f.decisions.size(); ++b) {
      for (int64_t k : f.chosen[b]) bit_macs += f.decisions[b].macs_per_sample * options.relative_cost(k);
      fp32 += 6.0 * f.decisions[b].macs_per_sample;
    }
    EXPECT_NEAR(blocks_cp(f.decisions, f.chosen, options), 100 * bit_macs / fp32, 1e-12) << preset;
  }
  const GatedForward f = gated_forward(OptionSet::parse("cifar-release", 0));
  EXPECT_CONTAINS(error_of([&] { blocks_cp(f.decisions, {{0}}, OptionSet::parse("cifar-release", 0)); }),
                  "choices of 1 blocks for 3 gated blocks");
}

TEST(DfqAblations, EightBitWeightsReachFracTrainsTargetsOnlyWhenSteeredAtFour) {
  RunConfig config = fractrain_config("cifar-release", 8);
  // At w8 the options cost 2.93 .. 7.03 %: the 2.0 and 2.5 % stages are out of reach.
  EXPECT_CONTAINS(error_of([&] { validate_dfq(config); }), "a target of 2% is outside what the options");
  config.dfq.steering_weight_bits = 4;
  validate_dfq(config);
  const auto model = build_model(config, ModelInputSpec{1, 28, 28, 10}, torch::kCPU);
  auto controller = make_precision_controller(config, *model, 468, 7488);
  const auto* dynamic = dynamic_cast<const DynamicController*>(controller.get());
  ASSERT_NE(dynamic, nullptr);
  EXPECT_EQ(dynamic->options().weight_bits(), 8);
  EXPECT_EQ(dynamic->steering_options().weight_bits(), 4);
  EXPECT_CONTAINS(controller->describe(), "cifar-release (w8: 3/6 4/6 4/8 6/8 6/12) target cp 2,2.5,3,3.5%");
  // The classifier (FW-w/BW-8 at the option set's width) takes the 8-bit weights and keeps its 4-bit activations.
  config.precision.quantize_classifier = true;
  const LayerPrecision classifier =
      make_precision_controller(config, *model, 468, 7488)->current_plan().for_layer(model->classifier_name());
  EXPECT_EQ(classifier.act_bits(), 4);
  EXPECT_EQ(classifier.weight_bits(), 8);
  EXPECT_EQ(classifier.grad_bits(), 8);
  config.dfq.steering_weight_bits = 0;
  config.dfq.weight_bits = 4;
  const LayerPrecision plain =
      make_precision_controller(config, *model, 468, 7488)->current_plan().for_layer(model->classifier_name());
  EXPECT_EQ(plain.act_bits(), 4);
  EXPECT_EQ(plain.weight_bits(), 4);
  config.dfq.steering_weight_bits = 4;
  config.dfq.weight_bits = 8;

  config.dfq.cp_scope = "network";
  EXPECT_CONTAINS(error_of([&] { validate_dfq(config); }),
                  "dfq.steering_weight_bits = 4 counts the gated blocks' cp, but dfq.cp_scope = \"network\"");
  RunConfig fw8;
  fw8.precision.mode = PrecisionMode::Static;
  fw8.precision.fw = fw8.precision.bw = 8;
  fw8.dfq.steering_weight_bits = 4;
  EXPECT_CONTAINS(error_of([&] { validate_dfq(fw8); }), "precision.mode = \"static\" has none");
  RunConfig d;
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "dfq.steering_weight_bits=40"); }), "1..32");
}

TEST(DfqAblations, TargetsBelowTheFloorOfTheRemainingOptionsOnlyWhenAllowed) {
  // cifar-release without its cheapest option (3/6, 1.76 %): the floor is 4/6's 2.08 %, above the 2.0 % stage.
  RunConfig config = fractrain_config("4/6,4/8,6/8,6/12", 4);
  const std::string error = error_of([&] { validate_dfq(config); });
  EXPECT_CONTAINS(error, "a target of 2% is outside what the options 4/6,4/8,6/8,6/12 (w4: 4/6 4/8 6/8 6/12) can "
                         "reach (2.08% .. 4.69%");
  EXPECT_CONTAINS(error, "dfq.allow_unreachable_targets = true");
  config.dfq.allow_unreachable_targets = true;
  validate_dfq(config);
  RunConfig parsed;
  apply_override(parsed, "dfq.allow_unreachable_targets=true");
  EXPECT_TRUE(parsed.dfq.allow_unreachable_targets);
  RunConfig fp32;
  fp32.dfq.allow_unreachable_targets = true;
  EXPECT_CONTAINS(error_of([&] { validate_dfq(fp32); }), "remove them or use dfq or fractrain");
}
