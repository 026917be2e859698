// PFQ schedules: manual stages switch at the given steps, epochs or equal parts of the run; the auto controller
// enters the next stage at the indicator's turning points; the precision keys are validated with clear errors.
#include <gtest/gtest.h>

#include "fractrain/models/model_registry.h"
#include "fractrain/precision/progressive_controller.h"
#include "fractrain/train/precision_schedule.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

std::vector<Precision> stages_of(const std::vector<std::pair<int, int>>& fw_bw) {
  std::vector<Precision> out;
  for (const auto& [fw, bw] : fw_bw) out.push_back(Precision::fw_bw(fw, bw));
  return out;
}

std::vector<PrecisionPlan> plans_of(const std::vector<Precision>& stages) {
  std::vector<PrecisionPlan> out;
  for (const auto& p : stages) out.push_back(PrecisionPlan::uniform(p));
  return out;
}

PrecisionConfig pfq(const std::string& mode) {
  PrecisionConfig p;
  p.mode = precision_mode_names().parse(mode, "precision.mode");
  return p;
}

}  // namespace

TEST(PfqSchedule, ManualStagesSwitchAtTheGivenSteps) {
  const auto stages = stages_of({{4, 8}, {6, 8}, {8, 8}});
  auto c = ProgressiveController::manual(stages, plans_of(stages), {3, 6}, /*steps_per_epoch=*/3);
  const std::vector<int> expected_stage = {0, 0, 0, 1, 1, 1, 2, 2, 2};
  for (int64_t step = 0; step < 9; ++step) {
    const PrecisionPlan& plan = c->plan_for_step(step);
    EXPECT_EQ(c->stage(), expected_stage[step]) << "step " << step;
    EXPECT_EQ(plan.for_layer("any").weight_bits(), stages[expected_stage[step]].weight) << "step " << step;
    EXPECT_EQ(plan.noise_step, static_cast<uint64_t>(step));
  }
  ASSERT_EQ(c->turning_points().size(), 2u);
  EXPECT_EQ(c->turning_points()[0].step, 3);
  EXPECT_DOUBLE_EQ(c->turning_points()[0].epoch, 1.0);
  EXPECT_EQ(c->turning_points()[1].step, 6);
  EXPECT_EQ(c->turning_points()[1].precision, Precision::fw_bw(8, 8));
  EXPECT_EQ(c->describe(), "pfq-manual fw4,6,8/bw8,8,8");
  c->observe_window_loss(1.0, 9, 3.0);  // a manual schedule ignores the loss
  EXPECT_EQ(c->turning_points().size(), 2u);
}

TEST(PfqSchedule, ManualSwitchStepsFromEpochsIterationsOrEqualParts) {
  PrecisionConfig p = pfq("pfq-manual");
  EXPECT_EQ(manual_switch_steps(p, 10, 100), (std::vector<int64_t>{25, 50, 75}));
  EXPECT_EQ(manual_switch_steps(p, 10, 10), (std::vector<int64_t>{2, 5, 7}));
  p.pfq_switch_epochs = {1, 2, 5};
  EXPECT_EQ(manual_switch_steps(p, 10, 100), (std::vector<int64_t>{10, 20, 50}));
  p.pfq_switch_epochs.clear();
  p.pfq_switch_iterations = {7, 8, 9};
  EXPECT_EQ(manual_switch_steps(p, 10, 100), (std::vector<int64_t>{7, 8, 9}));
  p.pfq_fw = {4, 8};
  p.pfq_bw = {8, 8};
  p.pfq_switch_iterations.clear();
  EXPECT_EQ(manual_switch_steps(p, 10, 101), (std::vector<int64_t>{50}));
}

TEST(PfqSchedule, AutoControllerEntersTheNextStageAtTurningPoints) {
  const auto stages = stages_of({{4, 8}, {8, 8}});
  PlateauSettings s;
  auto c = ProgressiveController::automatic(stages, plans_of(stages), s);
  for (int w = 1; w <= 4; ++w) c->observe_window_loss(1.0, 10 * w, w);
  EXPECT_EQ(c->stage(), 0);
  c->observe_window_loss(1.0, 50, 5.0);
  EXPECT_EQ(c->stage(), 1);
  EXPECT_EQ(c->plan_for_step(50).for_layer("any").weight_bits(), 8);
  ASSERT_EQ(c->turning_points().size(), 1u);
  const TurningPoint& t = c->turning_points()[0];
  EXPECT_EQ(t.step, 50);
  EXPECT_DOUBLE_EQ(t.epoch, 5.0);
  EXPECT_DOUBLE_EQ(t.eps, 0.05);
  EXPECT_EQ(t.differences, (std::vector<double>{0, 0, 0, 0}));
  for (int w = 6; w <= 20; ++w) c->observe_window_loss(1.0, 10 * w, w);  // the last stage: no more checks
  EXPECT_EQ(c->stage(), 1);
  EXPECT_EQ(c->describe(), "pfq-auto fw4,8/bw8,8");
}

TEST(PfqSchedule, ControllerStateRestoresAndRefusesAnotherSchedule) {
  const auto stages = stages_of({{3, 6}, {4, 6}, {6, 8}, {8, 8}});
  auto a = ProgressiveController::automatic(stages, plans_of(stages), PlateauSettings{});
  for (int w = 1; w <= 7; ++w) a->observe_window_loss(1.0, w, w);
  auto b = ProgressiveController::automatic(stages, plans_of(stages), PlateauSettings{});
  b->restore(nlohmann::json::parse(a->state().dump()));
  EXPECT_EQ(b->stage(), 1);
  EXPECT_EQ(b->state(), a->state());
  const auto other = stages_of({{4, 8}, {8, 8}});
  auto c = ProgressiveController::automatic(other, plans_of(other), PlateauSettings{});
  EXPECT_CONTAINS(error_of([&] { c->restore(a->state()); }), "pfq-auto fw3,4,6,8/bw6,6,8,8");
}

RunConfig with_precision(const PrecisionConfig& p) {
  RunConfig c;
  c.precision = p;
  return c;
}

TEST(PfqSchedule, FactoryBuildsTheControllerOfTheMode) {
  auto model = create_model("resnet8", ModelInputSpec{1, 28, 28, 10});
  PrecisionConfig p;
  p.fw = 8;
  p.bw = 8;
  EXPECT_EQ(make_precision_controller(with_precision(p), *model, 10, 100)->describe(), "fw8bw8");
  auto manual = make_precision_controller(with_precision(pfq("pfq-manual")), *model, 10, 100);
  EXPECT_EQ(manual->describe(), "pfq-manual fw3,4,6,8/bw6,6,8,8");
  EXPECT_EQ(manual->stage_count(), 4);
  // The layer policy holds in every stage: the classifier stays FP32.
  EXPECT_EQ(manual->plan_for_step(99).for_layer(model->classifier_name()).weight_bits(), 0);
  EXPECT_EQ(manual->plan_for_step(99).for_layer(model->first_layer_name()).weight_bits(), 8);
  EXPECT_EQ(make_precision_controller(with_precision(pfq("pfq-auto")), *model, 10, 100)->describe(), "pfq-auto fw3,4,6,8/bw6,6,8,8");
}

TEST(PfqSchedule, ConfigKeysAreReadAndValidated) {
  RunConfig c = parse_run_config(
      "[precision]\nmode = \"pfq-auto\"\npfq_fw = [4, 8]\npfq_bw = [8, 8]\npfq_window_iterations = 50\n"
      "pfq_eps = 0.1\npfq_alpha = 0.5\n",
      "pfq.toml");
  EXPECT_EQ(c.precision.mode, PrecisionMode::PfqAuto);
  EXPECT_EQ(c.precision.pfq_fw, (std::vector<int64_t>{4, 8}));
  EXPECT_EQ(c.precision.pfq_window_iterations, 50);
  EXPECT_DOUBLE_EQ(c.precision.pfq_eps, 0.1);
  EXPECT_DOUBLE_EQ(c.precision.pfq_alpha, 0.5);

  RunConfig d;
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.mode=pfq"); }), "pfq-manual");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.pfq_fw=[8]"); }), "at least 2 stages");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.pfq_bw=[8,33]"); }), "0 (full precision) or 1..32");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.pfq_switch_epochs=[2,1,3]"); }), "strictly increasing");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.pfq_switch_iterations=[0,5,9]"); }), ">= 1");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.pfq_eps=0"); }), "must be > 0");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.pfq_alpha=1.5"); }), "(0, 1]");

  // Cross-key rules: named in the file's errors, and refused by the trainer whatever the source.
  EXPECT_CONTAINS(error_of([] { parse_run_config("[precision]\nmode = \"pfq-auto\"\npfq_fw = [4, 8]\n", "x.toml"); }),
                  "x.toml: precision.pfq_fw has 2 stages but precision.pfq_bw has 4");
  EXPECT_CONTAINS(error_of([] { parse_run_config("[precision]\nmode = \"pfq-manual\"\nfw = 8\n", "x.toml"); }),
                  "set both to 0");
  PrecisionConfig p = pfq("pfq-manual");
  p.pfq_switch_epochs = {1, 2, 3};
  p.pfq_switch_iterations = {1, 2, 3};
  EXPECT_CONTAINS(error_of([&] { validate_precision_schedule(p); }), "both set");
  p.pfq_switch_iterations.clear();
  p.pfq_switch_epochs = {1, 2};
  EXPECT_CONTAINS(error_of([&] { validate_precision_schedule(p); }),
                  "pfq_switch_epochs has 2 switch points but a schedule of 4 stages needs 3");
  p = pfq("pfq-auto");
  p.pfq_switch_iterations = {1, 2, 3};
  EXPECT_CONTAINS(error_of([&] { validate_precision_schedule(p); }), "pfq_switch_iterations is for pfq-manual");
  // Static mode ignores the PFQ keys, whatever they hold.
  p.mode = PrecisionMode::Static;
  EXPECT_NO_THROW(validate_precision_schedule(p));
}
