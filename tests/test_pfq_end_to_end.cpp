// PFQ runs on a real Fashion-MNIST slice: a manual schedule switches precision at the given iteration and the
// cost meter sees it (each stage costs what its precision costs); an auto schedule fires at the indicator's
// turning points, logs every window's test in indicator.csv, and a run stopped and resumed between them takes
// the same turning points and ends with bitwise-equal weights.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>

#include "fractrain/report/run_report.h"
#include "fractrain/util/gnuplot.h"
#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::final_weights;
using test_support::quiet;
using test_support::read_metrics;

namespace {

// resnet8 on 200 samples, batches of 32: 6 steps per epoch.
RunConfig tiny_pfq_run(const std::string& dir, const std::string& mode, int64_t iterations) {
  RunConfig c = test_support::small_run(dir, "resnet8", 200, 32);
  c.precision.mode = precision_mode_names().parse(mode, "precision.mode");
  c.train.iterations = iterations;
  c.train.eval_every = 2;
  return c;
}

}  // namespace

TEST(PfqEndToEnd, ManualScheduleSwitchesPrecisionAndCostAtTheGivenIteration) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_pfq_manual");
  RunConfig c = tiny_pfq_run(temp.str(), "pfq-manual", 8);
  c.precision.pfq_fw = {4, 8};
  c.precision.pfq_bw = {8, 8};
  c.precision.pfq_switch_iterations = {4};
  const nlohmann::json s = train_run(c, quiet());

  EXPECT_EQ(s["precision"], "pfq-manual fw4,8/bw8,8");
  ASSERT_EQ(s["turning_points"].size(), 1u);
  EXPECT_EQ(s["turning_points"][0]["step"], 4);
  EXPECT_EQ(s["turning_points"][0]["precision"], "fw8bw8");
  // Evaluations after steps 2 and 4 ran stage 0; those after 6 and 8 stage 1.
  const auto rows = read_metrics(temp.str());
  ASSERT_EQ(rows.size(), 4u);
  const std::vector<std::string> precision = {"fw4bw8", "fw4bw8", "fw8bw8", "fw8bw8"};
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i]["precision"], precision[i]) << "record " << i;
    EXPECT_EQ(rows[i]["stage"], i < 2 ? 0 : 1) << "record " << i;
  }
  // What the meter counted per stage: stage 1 costs exactly the FW-8/BW-8 reference per sample, stage 0 less.
  const auto& stages = s["stages"];
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0]["steps"], 4);
  EXPECT_EQ(stages[1]["first_step"], 4);
  EXPECT_EQ(stages[1]["steps"], 4);
  const double cp0 = stages[0]["cost"]["cp_percent"].get<double>(), cp1 = stages[1]["cost"]["cp_percent"].get<double>();
  const double fw8bw8 = s["cost"]["references"]["fw8bw8"]["cp_percent"].get<double>();
  EXPECT_NEAR(cp1, fw8bw8, 1e-9 * fw8bw8);
  EXPECT_LT(cp0, 0.8 * cp1);
  // The stages add up to the run.
  const double run_bit_macs = s["cost"]["run"]["bit_macs"].get<double>();
  EXPECT_NEAR(stages[0]["cost"]["bit_macs"].get<double>() + stages[1]["cost"]["bit_macs"].get<double>(), run_bit_macs,
              1e-9 * run_bit_macs);
  // A manual schedule has no indicator to log.
  EXPECT_FALSE(std::filesystem::exists(temp.str() + "/indicator.csv"));
  // The cumulative cp the metrics record rises after the switch.
  EXPECT_NEAR(rows[1]["cp"].get<double>(), cp0, 1e-9 * cp0);
  EXPECT_GT(rows[3]["cp"].get<double>(), rows[1]["cp"].get<double>());
}

TEST(PfqEndToEnd, AutoScheduleResumedMidRunTakesTheSameTurningPointsBitwise) {
  ASSERT_FASHION_MNIST_INSTALLED();
  // Windows of one step and a wide eps: the indicator fires on every 5th window (steps 5 and 10).
  auto config_for = [](const std::string& dir) {
    RunConfig c = tiny_pfq_run(dir, "pfq-auto", 14);
    c.precision.pfq_fw = {4, 6, 8};
    c.precision.pfq_bw = {8, 8, 8};
    c.precision.pfq_window_iterations = 1;
    c.precision.pfq_eps = 10.0;
    return c;
  };
  test_support::TempDir whole_dir("fractrain_pfq_whole"), split_dir("fractrain_pfq_split");
  const nlohmann::json whole = train_run(config_for(whole_dir.str()), quiet());
  ASSERT_EQ(whole["turning_points"].size(), 2u);
  EXPECT_EQ(whole["turning_points"][0]["step"], 5);
  EXPECT_EQ(whole["turning_points"][1]["step"], 10);
  EXPECT_DOUBLE_EQ(whole["turning_points"][0]["eps"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(whole["turning_points"][1]["eps"].get<double>(), 10.0 * 0.3);
  EXPECT_EQ(whole["turning_points"][1]["differences"].size(), 4u);
  EXPECT_EQ(whole["stages"].size(), 3u);

  // indicator.csv: one row per window. The first test comes with the 5th window; a turning point clears the
  // history, so the next test is 5 windows later; after the last stage nothing is tested.
  const auto windows = read_metrics(whole_dir.str(), "indicator");
  ASSERT_EQ(windows.size(), 14u);
  for (size_t i = 0; i < windows.size(); ++i) {
    const nlohmann::json& w = windows[i];
    const int64_t step = static_cast<int64_t>(i) + 1;
    SCOPED_TRACE("window ending at step " + std::to_string(step));
    EXPECT_EQ(w["step"], step);
    EXPECT_EQ(w["stage"], step <= 5 ? 0 : step <= 10 ? 1 : 2);
    EXPECT_GT(w["window_loss"].get<double>(), 0.0);
    EXPECT_GT(w["scale"].get<double>(), 0.0);
    const bool tested = step == 5 || step == 10;
    EXPECT_EQ(w["turning_point"], tested ? 1 : 0);
    EXPECT_EQ(w.contains("max_d"), tested);
    EXPECT_EQ(w.contains("d1") && w.contains("d4"), tested);
    EXPECT_DOUBLE_EQ(w["eps"].get<double>(), step <= 5 ? 10.0 : step <= 10 ? 3.0 : 0.9);
  }
  // The tests that fired are the summary's turning points, differences and all.
  for (const int t : {0, 1}) {
    const nlohmann::json& w = windows[t == 0 ? 4 : 9];
    const auto& d = whole["turning_points"][t]["differences"];
    double largest = 0.0;
    for (size_t j = 0; j < 4; ++j) {
      EXPECT_DOUBLE_EQ(w["d" + std::to_string(j + 1)].get<double>(), d[j].get<double>());
      largest = std::max(largest, d[j].get<double>());
    }
    EXPECT_DOUBLE_EQ(w["max_d"].get<double>(), largest);
  }
  // The report draws the tests against eps.
  if (gnuplot_available()) {
    const std::vector<std::string> written = write_run_report(whole_dir.str(), {});
    EXPECT_NE(std::find(written.begin(), written.end(), whole_dir.str() + "/report/indicator.png"), written.end());
    EXPECT_GT(std::filesystem::file_size(whole_dir.str() + "/report/indicator.svg"), 1000u);
  }

  TrainOptions stop = quiet();
  stop.stop_at_step = 7;  // between the turning points, with 2 windows in the indicator's history
  EXPECT_TRUE(train_run(config_for(split_dir.str()), stop).interrupted);
  TrainOptions resume = quiet();
  resume.resume_from = last_checkpoint_path(split_dir.str());
  const nlohmann::json split = train_run(config_for(split_dir.str()), resume);

  EXPECT_EQ(split["turning_points"], whole["turning_points"]);
  EXPECT_EQ(split["stages"], whole["stages"]);
  // The resumed run's indicator.csv reads as the uninterrupted run's: the rows after the checkpoint are rewritten.
  EXPECT_EQ(read_metrics(split_dir.str(), "indicator"), windows);
  const auto a = final_weights(config_for(whole_dir.str())), b = final_weights(config_for(split_dir.str()));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
}
