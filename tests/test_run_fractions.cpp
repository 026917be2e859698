// Schedules scaled to the run (issue 19): lr milestones, PFQ switch points, the loss indicator's window and
// FracTrain's held last stage given as fractions of the run map to the right steps for any run length; values
// out of range and keys that contradict each other are refused naming them. Also the static weight width
// (precision.weight_bits) and float-list config values.
#include <gtest/gtest.h>

#include "fractrain/precision/dynamic_controller.h"
#include "fractrain/precision/staged_schedule.h"
#include "fractrain/train/lr_schedule.h"
#include "fractrain/train/precision_schedule.h"
#include "fractrain/train/run_components.h"
#include "fractrain/train/run_fraction.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

// The steps at which the lr of a multistep schedule with milestone fractions changes, over a whole run.
std::vector<int64_t> lr_drop_steps(const ScheduleConfig& s, int64_t steps_per_epoch, int64_t total) {
  std::vector<int64_t> drops;
  double previous = learning_rate(s, 0.1, ScheduleClock{0, steps_per_epoch, total});
  for (int64_t i = 1; i < total; ++i) {
    const double lr = learning_rate(s, 0.1, ScheduleClock{i, steps_per_epoch, total});
    if (lr != previous) drops.push_back(i);
    previous = lr;
  }
  return drops;
}

ScheduleConfig paper_shaped_lr() {
  ScheduleConfig s;
  s.type = "multistep";
  s.milestone_fractions = {0.5, 0.75};
  s.gamma = 0.1;
  return s;
}

}  // namespace

TEST(RunFractions, StepAtFractionIsTheNearestStep) {
  EXPECT_EQ(step_at_fraction(0.5, 7488), 3744);
  EXPECT_EQ(step_at_fraction(0.75, 7488), 5616);
  EXPECT_EQ(step_at_fraction(0.00625, 7488), 47);  // 46.8
  EXPECT_EQ(step_at_fraction(0.29, 100), 29);      // 28.999999999999996 in doubles: nearest, not floor
  EXPECT_EQ(step_at_fraction(0.5, 3), 2);          // 1.5 rounds away from zero
  EXPECT_EQ(step_at_fraction(0.5, 0), 0);
}

TEST(RunFractions, MilestoneFractionsDropTheLrAtTheSameShareOfAnyRunLength) {
  const ScheduleConfig s = paper_shaped_lr();
  // The paper's run: 160 epochs of 391 steps, drops at epochs 80 and 120, as the epoch milestones give them.
  EXPECT_EQ(lr_drop_steps(s, 391, 160 * 391), (std::vector<int64_t>{80 * 391, 120 * 391}));
  ScheduleConfig epochs;
  epochs.type = "multistep";
  epochs.milestones = {80, 120};
  EXPECT_EQ(lr_drop_steps(epochs, 391, 160 * 391), lr_drop_steps(s, 391, 160 * 391));
  // 16 epochs of Fashion-MNIST, and lengths that do not divide: always the nearest step.
  EXPECT_EQ(lr_drop_steps(s, 468, 16 * 468), (std::vector<int64_t>{3744, 5616}));
  EXPECT_EQ(lr_drop_steps(s, 10, 101), (std::vector<int64_t>{51, 76}));  // 50.5 -> 51, 75.75 -> 76
  EXPECT_EQ(lr_drop_steps(s, 1, 7), (std::vector<int64_t>{4, 5}));       // 3.5 -> 4, 5.25 -> 5
  EXPECT_NEAR(learning_rate(s, 0.1, ScheduleClock{5615, 468, 7488}), 0.01, 1e-15);
  EXPECT_NEAR(learning_rate(s, 0.1, ScheduleClock{5616, 468, 7488}), 0.001, 1e-15);
}

TEST(RunFractions, ScheduleKeysAreReadAndContradictionsRefused) {
  RunConfig c = parse_run_config("[schedule]\ntype = \"multistep\"\nmilestone_fractions = [0.5, 0.75]\n", "s.toml");
  EXPECT_EQ(c.schedule.milestone_fractions, (std::vector<double>{0.5, 0.75}));
  apply_override(c, "schedule.milestone_fractions=0.25,0.5");  // --set without brackets
  EXPECT_EQ(c.schedule.milestone_fractions, (std::vector<double>{0.25, 0.5}));
  // Integers are numbers too in a float list; the printed config reads back to the same values.
  EXPECT_EQ(parse_run_config("[schedule]\nmilestone_fractions = [0.5]\n", "s.toml").schedule.milestone_fractions,
            (std::vector<double>{0.5}));
  EXPECT_TRUE(parse_run_config(to_toml(c), "printed.toml") == c);

  RunConfig d;
  for (const char* bad : {"[0.5, 1.0]", "[0, 0.5]", "[-0.1]", "[0.75, 0.5]", "[0.5, 0.5]", "[nan]"})
    EXPECT_CONTAINS(error_of([&] { apply_override(d, std::string("schedule.milestone_fractions=") + bad); }),
                    "schedule.milestone_fractions");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "schedule.milestone_fractions=[0.5,0.4]"); }),
                  "strictly increasing");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "schedule.milestone_fractions=[1.5]"); }), "each in (0, 1)");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "schedule.milestone_fractions=[0.5,half]"); }),
                  "'half' is not a number");
  EXPECT_CONTAINS(error_of([] { parse_run_config("[schedule]\nmilestone_fractions = [0.5, \"x\"]\n", "s.toml"); }),
                  "element 1 is a string, expected a list of numbers");
  EXPECT_CONTAINS(error_of([] {
                    parse_run_config("[schedule]\ntype = \"multistep\"\nmilestones = [8]\nmilestone_fractions = [0.5]\n",
                                     "s.toml");
                  }),
                  "s.toml: schedule.milestones and schedule.milestone_fractions are both set");
  EXPECT_CONTAINS(error_of([] {
                    parse_run_config("[schedule]\ntype = \"cosine\"\nmilestone_fractions = [0.5]\n", "s.toml");
                  }),
                  "schedule.type = 'cosine' has no milestones");
}

TEST(RunFractions, IndicatorWindowAsAFractionOfTheRun) {
  PrecisionConfig p;
  p.mode = PrecisionMode::PfqAuto;
  EXPECT_EQ(indicator_window_steps(p, 468, 7488), 468);  // default: one epoch
  p.pfq_window_iterations = 100;
  EXPECT_EQ(indicator_window_steps(p, 468, 7488), 100);
  p.pfq_window_iterations = 0;
  p.pfq_window_fraction = 1.0 / 160;
  EXPECT_EQ(indicator_window_steps(p, 468, 7488), 47);          // 16 epochs: 46.8 steps
  EXPECT_EQ(indicator_window_steps(p, 391, 160 * 391), 391);    // the paper's run: once per epoch
  EXPECT_EQ(indicator_window_steps(p, 10, 100), 1);             // 0.625 -> at least one step
  EXPECT_EQ(indicator_window_steps(p, 10, 50), 1);              // 0.3125 rounds to 0: still one step
  EXPECT_NO_THROW(validate_precision_schedule(p));

  RunConfig d;
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.pfq_window_fraction=1"); }), "in (0, 1), or 0");
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.pfq_window_fraction=-0.01"); }), "in (0, 1), or 0");
  p.pfq_window_iterations = 50;
  EXPECT_CONTAINS(error_of([&] { validate_precision_schedule(p); }),
                  "precision.pfq_window_fraction = 0.00625 and precision.pfq_window_iterations = 50 are both set");
}

TEST(RunFractions, ManualPfqStagesAtFractionsOfTheRun) {
  PrecisionConfig p;
  p.mode = PrecisionMode::PfqManual;
  p.pfq_switch_fractions = {0.25, 0.5, 0.75};
  EXPECT_EQ(manual_switch_steps(p, 468, 7488), (std::vector<int64_t>{1872, 3744, 5616}));
  EXPECT_EQ(manual_switch_steps(p, 10, 101), (std::vector<int64_t>{25, 51, 76}));  // 25.25, 50.5, 75.75
  EXPECT_EQ(manual_switch_steps(p, 1, 2), (std::vector<int64_t>{1, 2, 3}));        // kept strictly increasing
  EXPECT_NO_THROW(validate_precision_schedule(p));

  p.pfq_switch_fractions = {0.5};
  EXPECT_CONTAINS(error_of([&] { validate_precision_schedule(p); }),
                  "precision.pfq_switch_fractions has 1 switch points but a schedule of 4 stages needs 3");
  p.pfq_switch_fractions = {0.25, 0.5, 0.75};
  p.pfq_switch_epochs = {1, 2, 3};
  EXPECT_CONTAINS(error_of([&] { validate_precision_schedule(p); }),
                  "precision.pfq_switch_epochs and precision.pfq_switch_fractions are both set");
  p.pfq_switch_epochs.clear();
  p.mode = PrecisionMode::PfqAuto;
  EXPECT_CONTAINS(error_of([&] { validate_precision_schedule(p); }), "pfq_switch_fractions is for pfq-manual");
  RunConfig d;
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.pfq_switch_fractions=[0.5,1]"); }), "each in (0, 1)");
}

TEST(RunFractions, HeldLastStageIsEnteredFromWhereverTheIndicatorIs) {
  std::vector<StageInfo> stages;
  for (int i = 0; i < 4; ++i) stages.push_back({Precision::full(), "stage " + std::to_string(i)});
  StagedSchedule schedule = StagedSchedule::by_indicator(stages, PlateauSettings{});
  schedule.hold_last_stage_from(75, 10);
  schedule.advance_to_step(74);
  EXPECT_EQ(schedule.stage(), 0);
  schedule.advance_to_step(75);
  ASSERT_EQ(schedule.stage(), 3);
  ASSERT_EQ(schedule.turning_points().size(), 1u);
  EXPECT_EQ(schedule.turning_points()[0].step, 75);
  EXPECT_DOUBLE_EQ(schedule.turning_points()[0].epoch, 7.5);
  EXPECT_EQ(schedule.turning_points()[0].label, "stage 3");
  // The indicator is finished: a flat loss enters nothing more.
  for (int w = 0; w < 40; ++w) schedule.observe_window_loss(1.0, 80 + w, 8.0);
  EXPECT_EQ(schedule.stage(), 3);
  EXPECT_EQ(schedule.turning_points().size(), 1u);
  // A resumed schedule past the step is restored in the last stage and stays there.
  StagedSchedule resumed = StagedSchedule::by_indicator(stages, PlateauSettings{});
  resumed.hold_last_stage_from(75, 10);
  resumed.restore(schedule.state("s"), "s");
  resumed.advance_to_step(90);
  EXPECT_EQ(resumed.stage(), 3);
  EXPECT_EQ(resumed.turning_points().size(), 1u);
}

TEST(RunFractions, FracTrainHoldsItsLastTargetFromTheFractionOfTheRun) {
  RunConfig config;
  config.model.name = "resnet20";
  config.precision.mode = PrecisionMode::FracTrain;
  config.dfq.options = "cifar-release";
  config.dfq.target_cp = 2.75;
  config.dfq.last_stage_from = 0.75;
  const auto model = build_model(config, ModelInputSpec{1, 28, 28, 10}, torch::kCPU);  // the gated form
  auto controller = make_precision_controller(config, *model, 468, 7488);
  EXPECT_CONTAINS(controller->describe(), "last target from step 5616");
  controller->plan_for_step(5615);
  EXPECT_EQ(controller->stage(), 0);
  controller->plan_for_step(5616);
  EXPECT_EQ(controller->stage(), 3);
  EXPECT_EQ(controller->label(), "cp 3.50%");

  // Only FracTrain has stages to hold, and the value is a fraction of the run.
  config.precision.mode = PrecisionMode::Dfq;
  EXPECT_CONTAINS(error_of([&] { validate_dfq(config); }), "dfq.last_stage_from = 0.75 holds FracTrain's last");
  RunConfig d;
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "dfq.last_stage_from=1.5"); }), "in (0, 1), or 0");
}

TEST(RunFractions, StaticWeightBitsNarrowOnlyTheWeights) {
  PrecisionConfig p;
  p.fw = 8;
  p.bw = 8;
  p.weight_bits = 4;
  const Precision q = static_precision_of(p);
  EXPECT_EQ(q.act, 8);
  EXPECT_EQ(q.weight, 4);
  EXPECT_EQ(q.grad, 8);
  p.weight_bits = 0;
  EXPECT_EQ(static_precision_of(p), Precision::fw_bw(8, 8));
  p.mode = PrecisionMode::PfqAuto;
  p.fw = p.bw = 0;
  p.weight_bits = 4;
  EXPECT_CONTAINS(error_of([&] { validate_precision_schedule(p); }),
                  "precision.weight_bits = 4 is for precision.mode = \"static\"");
  RunConfig d;
  EXPECT_CONTAINS(error_of([&] { apply_override(d, "precision.weight_bits=33"); }), "1..32");
}
