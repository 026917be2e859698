// The step protocol between the trainer, the model and the precision controller (precision_controller.h):
// decisions come back from the forward pass as values and are what the controller records; plans name only
// layers the model has; precision modes, models and DFQ execution modes are typed names with one table each.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/models/gated_model.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/precision/dynamic_controller.h"
#include "fractrain/precision/gating_cost.h"
#include "fractrain/precision/progressive_controller.h"
#include "fractrain/precision/static_controller.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/train/run_config.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

std::shared_ptr<GatedResNet> gated_resnet8(const ModelInputSpec& input, const OptionSet& options) {
  torch::manual_seed(3);
  return std::make_shared<GatedResNet>(options, GateExecution::Mixed, cifar_resnet_layout(8), input);
}

// How often each block's decisions chose each option: [block][option].
std::vector<std::vector<int64_t>> count_options(const std::vector<BlockDecision>& decisions, size_t options) {
  std::vector<std::vector<int64_t>> counts;
  for (const auto& d : decisions) {
    std::vector<int64_t> c(options, 0);
    const at::Tensor cpu = d.options.cpu();
    for (int64_t n = 0; n < cpu.numel(); ++n) ++c.at(static_cast<size_t>(cpu[n].item<int64_t>()));
    counts.push_back(c);
  }
  return counts;
}

}  // namespace

TEST(PrecisionProtocol, DecisionsReturnedByTheForwardPassAreWhatTheGateStatisticsRecord) {
  const ModelInputSpec input{1, 12, 12, 10};
  const OptionSet options = OptionSet::parse("cifar-paper", 0);
  auto model = gated_resnet8(input, options);
  model->train();
  auto controller = DynamicController::dfq(options, PrecisionPlan::uniform(Precision::full()), 3.0, CostSteering{},
                                           model->gated_blocks());
  std::vector<std::vector<int64_t>> expected(3, std::vector<int64_t>(options.size(), 0));
  for (int step = 0; step < 3; ++step) {
    const ForwardResult result = model->run(torch::rand({6, 1, 12, 12}), controller->plan_for_step(step));
    ASSERT_EQ(result.decisions.size(), 3u);
    for (size_t b = 0; b < result.decisions.size(); ++b) {
      const BlockDecision& d = result.decisions[b];
      EXPECT_EQ(d.block, model->gated_blocks()[b]);
      EXPECT_EQ(d.options.scalar_type(), at::kLong);
      EXPECT_EQ(d.options.device(), result.output.device());
      EXPECT_EQ(d.options.sizes(), (std::vector<int64_t>{6}));
      // The decision is the mask's argmax: the mask is the straight-through one-hot of the same choice.
      EXPECT_TRUE(torch::equal(d.mask.detach().argmax(1), d.options));
    }
    const auto counts = count_options(result.decisions, options.size());
    for (size_t b = 0; b < 3; ++b)
      for (size_t k = 0; k < options.size(); ++k) expected[b][k] += counts[b][k];
    const at::Tensor term = controller->observe_step(result.decisions, StepCost{2.0, 2.5});
    // Below the target of 3 % the term is -beta * COST: it rewards spending more.
    ASSERT_TRUE(term.defined());
    // The term is a float tensor (beta * COST in single precision): equal to float rounding.
    const double expected_term = -1e-3 * gating_cost(result.decisions, options).item<double>();
    EXPECT_NEAR(term.item<double>(), expected_term, 1e-6 * std::abs(expected_term));
  }
  const GateWindow& window = controller->eval_window();
  EXPECT_EQ(window.counts, expected);
  EXPECT_EQ(window.samples, 18);
  EXPECT_DOUBLE_EQ(window.cp_blocks(), 2.5);
}

TEST(PrecisionProtocol, ControllersContributeTheirOwnMetricsAndTrace) {
  const OptionSet options = OptionSet::parse("cifar-release", 0);
  auto dfq = DynamicController::dfq(options, PrecisionPlan::uniform(Precision::full()), 3.0, CostSteering{},
                                    {"stage1.0"});
  EXPECT_EQ(dfq->metric_columns(), (std::vector<std::string>{"window_cp", "window_cp_blocks", "target_cp"}));
  EXPECT_EQ(dfq->trace().name, "cp_trace");
  dfq->record_batch({{0, 1, 1, 4}}, 2.0, 3.0);
  const ControllerReport report = dfq->evaluation_report();
  EXPECT_DOUBLE_EQ(report.metrics.at("window_cp_blocks").get<double>(), 3.0);
  EXPECT_EQ(report.metrics.at("gate_selection").at("stage1.0").size(), options.size());
  ASSERT_EQ(report.log_lines.size(), 1u);
  EXPECT_CONTAINS(report.log_lines[0], "target 3.000%");
  EXPECT_DOUBLE_EQ(dfq->take_trace_record().at("cp").get<double>(), 2.0);

  StaticController fixed(Precision::fw_bw(8, 8), PrecisionPlan::uniform(Precision::fw_bw(8, 8)));
  EXPECT_FALSE(fixed.observe_step({}, StepCost{}).defined());  // no loss term
  EXPECT_TRUE(fixed.metric_columns().empty());
  EXPECT_TRUE(fixed.trace().name.empty());
  EXPECT_TRUE(fixed.evaluation_report().log_lines.empty());
}

TEST(PrecisionProtocol, APlanNamingALayerTheModelLacksIsAnErrorNamingIt) {
  const ModelInputSpec input{1, 12, 12, 10};
  auto model = create_model("resnet8", input);
  PrecisionPlan plan = make_static_plan(*model, Precision::fw_bw(8, 8), {});
  EXPECT_NO_THROW(model->check_plan(plan));
  plan.set_layer("stage1.0.conv3", LayerPrecision::uniform(Precision::fw_bw(4, 8)));
  const std::string message = error_of([&] { model->run(torch::rand({2, 1, 12, 12}), plan); });
  EXPECT_CONTAINS(message, "'stage1.0.conv3'");
  EXPECT_CONTAINS(message, "resnet8");
  // A model without a stem: keeping "the first layer" FP32 names no layer, and the plan is valid.
  auto lm = create_model("transformer-lm", ModelInputSpec{0, 0, 0, 50, 8},
                         TransformerLmOptions{1, 16, 2, 32, 0.0, true, false});
  QuantizationPolicy policy;
  policy.quantize_first_layer = false;
  EXPECT_NO_THROW(lm->check_plan(make_static_plan(*lm, Precision::fw_bw(8, 8), policy)));
}

TEST(PrecisionProtocol, PrecisionModesAreOneNameTable) {
  for (const auto& name : precision_mode_names().names())
    EXPECT_EQ(to_string(precision_mode_names().parse(name, "precision.mode")), name);
  EXPECT_TRUE(is_gated(PrecisionMode::FracTrain));
  EXPECT_FALSE(is_gated(PrecisionMode::PfqAuto));
  EXPECT_TRUE(is_progressive(PrecisionMode::PfqManual));
  const std::string in_file = error_of([] { parse_run_config("[precision]\nmode = \"pfq-atuo\"\n", "r.toml"); });
  EXPECT_CONTAINS(in_file, "r.toml");
  EXPECT_CONTAINS(in_file, "precision.mode");
  EXPECT_CONTAINS(in_file, "did you mean 'pfq-auto'");
  RunConfig c;
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "precision.mode=sbm"); }), "static, pfq-manual, pfq-auto, dfq or fractrain");
  apply_override(c, "precision.mode=fractrain");
  EXPECT_EQ(c.precision.mode, PrecisionMode::FracTrain);
  EXPECT_CONTAINS(to_toml(c), "mode = \"fractrain\"");
  EXPECT_CONTAINS(error_of([&] { apply_override(c, "dfq.execution=candidate"); }), "did you mean 'candidates'");
}

TEST(PrecisionProtocol, ModelsAreOneNameTable) {
  EXPECT_CONTAINS(error_of([] { create_model("resnet2O", ModelInputSpec{}); }), "did you mean 'resnet20'");
  EXPECT_CONTAINS(error_of([] { create_gated_model("transformer-lm", ModelInputSpec{}, OptionSet::parse("cifar-release", 0),
                                                   GateExecution::Mixed); }),
                  "not supported for transformer-lm");
  for (const auto& info : list_models()) EXPECT_EQ(info.gated_form, info.name != "transformer-lm") << info.name;
  // Unlisted CIFAR depths 6n+2 still build, and their gated form gates one block per BasicBlock.
  EXPECT_EQ(create_gated_model("resnet8", ModelInputSpec{1, 12, 12, 10}, OptionSet::parse("cifar-release", 0),
                               GateExecution::Mixed)->gated_blocks().size(), 3u);
  EXPECT_TRUE(create_model("resnet8", ModelInputSpec{})->gated_blocks().empty());
}

TEST(PrecisionProtocol, AScheduleRefusesTheStateOfAnother) {
  auto manual = ProgressiveController::manual({Precision::fw_bw(4, 8), Precision::fw_bw(8, 8)},
                                              {PrecisionPlan::uniform(Precision::fw_bw(4, 8)),
                                               PrecisionPlan::uniform(Precision::fw_bw(8, 8))},
                                              {5}, 10);
  manual->plan_for_step(7);
  ASSERT_EQ(manual->stage(), 1);
  const nlohmann::json state = manual->state();
  auto automatic = ProgressiveController::automatic({Precision::fw_bw(4, 8), Precision::fw_bw(8, 8)},
                                                    {PrecisionPlan::uniform(Precision::fw_bw(4, 8)),
                                                     PrecisionPlan::uniform(Precision::fw_bw(8, 8))},
                                                    PlateauSettings{});
  EXPECT_CONTAINS(error_of([&] { automatic->restore(state); }), "pfq-manual fw4,8/bw8,8");
  auto again = ProgressiveController::manual({Precision::fw_bw(4, 8), Precision::fw_bw(8, 8)},
                                             {PrecisionPlan::uniform(Precision::fw_bw(4, 8)),
                                              PrecisionPlan::uniform(Precision::fw_bw(8, 8))},
                                             {5}, 10);
  again->restore(state);
  EXPECT_EQ(again->stage(), 1);
  ASSERT_EQ(again->turning_points().size(), 1u);
  EXPECT_EQ(again->turning_points()[0].step, 5);
  EXPECT_EQ(again->turning_points()[0].label, "fw8bw8");  // the stage it entered
}
