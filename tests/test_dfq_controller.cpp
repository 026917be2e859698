// DFQ's option sets, its controller (the sign of the cost term, FracTrain's targets and stages, state), the
// gate statistics and the dfq config keys.
#include <gtest/gtest.h>

#include "fractrain/precision/dynamic_controller.h"
#include "fractrain/precision/option_set.h"
#include "fractrain/train/run_config.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

TEST(DfqOptionSet, PresetsAreThoseOfTheDesign) {
  const OptionSet release = OptionSet::parse("cifar-release", 0);
  EXPECT_EQ(release.weight_bits(), 4);
  ASSERT_EQ(release.size(), 5u);
  EXPECT_EQ(release.label(0), "3/6");
  EXPECT_EQ(release.label(4), "6/12");
  EXPECT_EQ(release.at(2), (Precision{4, 4, 8, false}));
  EXPECT_FALSE(release.has_skip());

  const OptionSet paper = OptionSet::parse("cifar-paper", 0);
  ASSERT_EQ(paper.size(), 7u);
  EXPECT_EQ(paper.skip_index(), 0);
  EXPECT_TRUE(paper.at(0).skip);
  EXPECT_EQ(OptionSet::parse("imagenet-release", 0).weight_bits(), 6);
  EXPECT_EQ(OptionSet::parse("mobilenet-paper", 0).size(), 5u);
  EXPECT_EQ(OptionSet::parse("cifar-release", 6).at(0).weight, 6);  // weight_bits overrides the preset's
}

TEST(DfqOptionSet, RelativeCostCountsTheThreePasses) {
  const OptionSet s = OptionSet::parse("skip,4/6,8/8", 4);
  EXPECT_DOUBLE_EQ(s.relative_cost(0), 0.0);
  EXPECT_DOUBLE_EQ(s.relative_cost(1), (4 * 4 + 6 * 4 + 4 * 6) / 3072.0);  // fw + eb + gc over 3 x 32 x 32
  EXPECT_DOUBLE_EQ(s.relative_cost(2), (8 * 4 + 8 * 4 + 8 * 8) / 3072.0);
}

TEST(DfqOptionSet, BadListsAreRefusedWithTheFix) {
  EXPECT_CONTAINS(error_of([] { OptionSet::parse("cifar-relase", 0); }), "did you mean 'cifar-release'");
  EXPECT_CONTAINS(error_of([] { OptionSet::parse("3/6,4/8", 0); }), "set dfq.weight_bits");
  EXPECT_CONTAINS(error_of([] { OptionSet::parse("3/6,4x8", 4); }), "'4x8'");
  EXPECT_CONTAINS(error_of([] { OptionSet::parse("3/6,0/8", 4); }), "1..32");
  EXPECT_CONTAINS(error_of([] { OptionSet::parse("3/6", 4); }), "at least 2 options");
  EXPECT_CONTAINS(error_of([] { OptionSet::parse("3/6,3/6", 4); }), "more than once");
  EXPECT_CONTAINS(error_of([] { OptionSet::parse("skip,skip,3/6", 4); }), "more than once");
}

namespace {

std::unique_ptr<DynamicController> dfq_controller(double target, double dead_band = 0) {
  CostSteering steering;
  steering.dead_band = dead_band;
  return DynamicController::dfq(OptionSet::parse("cifar-release", 0), PrecisionPlan::uniform(Precision::full()),
                                target, steering, {"stage1.0", "stage1.1"});
}

}  // namespace

TEST(DfqController, CostTermSignFlipsAtTheTarget) {
  auto c = dfq_controller(2.5);
  EXPECT_EQ(c->cost_sign(2.0), -1.0);  // below: the loss rewards spending more
  EXPECT_EQ(c->cost_sign(2.4999), -1.0);
  EXPECT_EQ(c->cost_sign(2.5), 1.0);   // at or above: it penalises cost
  EXPECT_EQ(c->cost_sign(4.0), 1.0);
  auto banded = dfq_controller(2.5, 0.2);
  EXPECT_EQ(banded->cost_sign(2.35), 0.0);
  EXPECT_EQ(banded->cost_sign(2.65), 0.0);
  EXPECT_EQ(banded->cost_sign(2.25), -1.0);
  EXPECT_EQ(banded->cost_sign(2.75), 1.0);
}

TEST(DfqController, PlanLetsTheGatesDecideWithFreshNoisePerStep) {
  auto c = dfq_controller(2.5);
  EXPECT_TRUE(c->plan_for_step(7).gating);
  EXPECT_EQ(c->current_plan().noise_step, 7u);
  EXPECT_EQ(c->stage_count(), 1);
  EXPECT_EQ(c->label(), "cp 2.50%");
  c->observe_window_loss(1.0, 10, 1.0);  // DFQ has no stages: nothing happens
  EXPECT_TRUE(c->turning_points().empty());
}

TEST(DfqController, FracTrainTargetsAreCentredOnTheOverallTarget) {
  const auto t = fractrain_targets(2.25, 0.5, 4);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_DOUBLE_EQ(t[0], 1.5);  // the paper's CIFAR stages 1.5 / 2 / 2.5 / 3
  EXPECT_DOUBLE_EQ(t[3], 3.0);
  EXPECT_CONTAINS(error_of([] { fractrain_targets(0.5, 0.5, 4); }), "raise the target");
}

TEST(DfqController, FracTrainRaisesTheTargetAtTurningPointsAndRestores) {
  PlateauSettings settings;
  settings.eps = 10;  // every 5th window is a turning point
  auto make = [&] {
    return DynamicController::fractrain(OptionSet::parse("cifar-release", 0), PrecisionPlan::uniform(Precision::full()),
                                        fractrain_targets(2.5, 0.5, 3), CostSteering{}, settings, {"b0"});
  };
  auto c = make();
  EXPECT_DOUBLE_EQ(c->target_cp(), 2.0);
  for (int w = 1; w <= 5; ++w) c->observe_window_loss(1.0, w * 10, w);
  EXPECT_DOUBLE_EQ(c->target_cp(), 2.5);
  ASSERT_EQ(c->turning_points().size(), 1u);
  EXPECT_EQ(c->turning_points()[0].step, 50);
  EXPECT_EQ(c->turning_points()[0].label, "cp 2.50%");
  c->record_batch({{0, 4, 4}}, 3.0, 2.8);
  auto d = make();
  d->restore(nlohmann::json::parse(c->state().dump()));
  EXPECT_EQ(d->state(), c->state());
  EXPECT_DOUBLE_EQ(d->target_cp(), 2.5);
  EXPECT_EQ(d->eval_window().counts[0][4], 2);
  auto other = dfq_controller(2.5);
  EXPECT_CONTAINS(error_of([&] { other->restore(c->state()); }), "precision schedule");
}

TEST(DfqController, StatisticsCountChoicesAndWeighCpBySamples) {
  GateStatistics stats({"a", "b"}, 3);
  stats.add_batch({{0, 0, 2, 1}, {2, 2, 2, 2}}, 3.0, 2.0);
  stats.add_batch({{1, 1}, {0, 2}}, 6.0, 5.0);
  const GateWindow w = stats.take_window();
  EXPECT_EQ(w.samples, 6);
  EXPECT_DOUBLE_EQ(w.cp(), (3.0 * 4 + 6.0 * 2) / 6);
  EXPECT_DOUBLE_EQ(w.cp_blocks(), (2.0 * 4 + 5.0 * 2) / 6);
  EXPECT_DOUBLE_EQ(w.fractions()[0][1], 3.0 / 6);
  EXPECT_DOUBLE_EQ(w.fractions()[1][2], 5.0 / 6);
  EXPECT_EQ(w.selection_json()["b"][0], 1.0 / 6);
  EXPECT_EQ(stats.window().samples, 0);  // taken: a new window starts
  EXPECT_CONTAINS(error_of([&] { stats.add_batch({{0}}, 1, 1); }), "expected 2");
  EXPECT_CONTAINS(error_of([&] { stats.add_batch({{0}, {3}}, 1, 1); }), "out of range");
}

TEST(DfqConfig, KeysAreReadAndCrossChecked) {
  RunConfig c = parse_run_config(
      "[precision]\nmode = \"fractrain\"\n[dfq]\noptions = \"cifar-paper\"\ntarget_cp = 2.5\nexecution = \"candidates\"\n",
      "test");
  EXPECT_EQ(c.dfq.options, "cifar-paper");
  EXPECT_EQ(c.dfq.execution, GateExecution::Candidates);
  EXPECT_CONTAINS(error_of([] { parse_run_config("[dfq]\nexecution = \"all\"\n", "t"); }), "mixed, candidates or masked");
  EXPECT_CONTAINS(error_of([] { parse_run_config("[precision]\nmode = \"dfq\"\n[dfq]\ntarget_cp = 9.0\n", "t"); }),
                  "outside what the options");
  EXPECT_CONTAINS(error_of([] { parse_run_config("[precision]\nmode = \"dfq\"\nfw = 8\n", "t"); }),
                  "set both to 0");
  EXPECT_CONTAINS(error_of([] { parse_run_config("[precision]\nmode = \"dfq\"\n[dfq]\noptions = \"cifar\"\n", "t"); }),
                  "unknown DFQ option set");
  EXPECT_CONTAINS(error_of([] { parse_run_config("[dfq]\ntarget = 2\n", "t"); }), "dfq.target_cp");
}
