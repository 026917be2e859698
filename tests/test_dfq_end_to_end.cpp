// DFQ and FracTrain on a real Fashion-MNIST slice: the cost term holds the per-epoch cp near its target, a
// FracTrain run raises its target at a turning point, `candidates` execution trains, and a DFQ run stopped and
// resumed ends with bitwise-equal weights, gate statistics and cp trace.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::final_weights;
using test_support::quiet;
using test_support::read_metrics;

namespace {

RunConfig dfq_run(const std::string& dir, const std::string& model, int64_t train_samples, int64_t batch) {
  RunConfig c = test_support::small_run(dir, model, train_samples, batch);
  c.data.test_subset = 256;
  c.precision.mode = PrecisionMode::Dfq;
  c.train.threads = 2;
  c.train.log_every = 4;
  return c;
}

}  // namespace

TEST(DfqEndToEnd, CostTermHoldsTheEpochCpNearTheTarget) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_dfq_target");
  RunConfig c = dfq_run(temp.str(), "resnet14", 2048, 64);  // 32 steps per epoch
  c.train.epochs = 3;
  c.dfq.target_cp = 2.5;  // cifar-release spans 1.76% (all 3/6) .. 4.69% (all 6/12)
  // The paper's beta (1e-3) holds the target on full epochs (docs/dfq.md) but lets cp drift up by ~0.1 per
  // epoch of this 32-step slice, where the task loss pulls harder; 3e-3 keeps the test far from its bound.
  c.dfq.beta = 3e-3;
  const nlohmann::json s = train_run(c, quiet());
  const auto rows = read_metrics(temp.str());
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& r : rows)
    std::printf("epoch %.0f: cp (blocks) %.3f%%, target 2.5%%\n", r["epoch"].get<double>(),
                r["window_cp_blocks"].get<double>());
  for (size_t e = 1; e < rows.size(); ++e)
    EXPECT_NEAR(rows[e]["window_cp_blocks"].get<double>(), 2.5, 0.5) << "epoch " << e + 1;
  // The selection statistics: per block, fractions over the 5 options summing to 1.
  const auto& selection = rows.back()["gate_selection"];
  EXPECT_EQ(selection.size(), 6u);
  for (const auto& [block, fractions] : selection.items()) {
    double sum = 0;
    for (double f : fractions) sum += f;
    EXPECT_NEAR(sum, 1.0, 1e-9) << block;
  }
  // Something was learned (3 times chance; after these 96 steps test accuracy was 41 % on an AVX2-only CPU and
  // above 50 % on AVX-512 ones, whose kernels sum in another order), and the run cost less than FW-8/BW-8 (6.25%).
  EXPECT_GT(s["final_test_accuracy"].get<double>(), 0.3);
  EXPECT_LT(s["cost"]["run"]["cp_blocks_percent"].get<double>(), 4.0);
  // The cp trace has a point every log_every steps; DFQ has no loss indicator to log.
  EXPECT_EQ(read_metrics(temp.str(), "cp_trace").size(), 96u / 4u);
  EXPECT_TRUE(read_metrics(temp.str(), "indicator").empty());
}

TEST(DfqEndToEnd, FracTrainRaisesItsTargetAtATurningPoint) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_fractrain");
  RunConfig c = dfq_run(temp.str(), "resnet8", 320, 32);
  c.precision.mode = PrecisionMode::FracTrain;
  c.train.iterations = 12;
  c.train.eval_every = 6;
  c.precision.pfq_window_iterations = 1;
  c.precision.pfq_eps = 10.0;  // a turning point at every 5th window
  c.dfq.target_cp = 2.5;
  c.dfq.stages = 2;
  const nlohmann::json s = train_run(c, quiet());
  ASSERT_EQ(s["turning_points"].size(), 1u);
  EXPECT_EQ(s["turning_points"][0]["step"], 5);
  EXPECT_EQ(s["turning_points"][0]["precision"], "cp 2.75%");
  const auto trace = read_metrics(temp.str(), "cp_trace");
  EXPECT_DOUBLE_EQ(trace.front()["target_cp"].get<double>(), 2.25);
  EXPECT_DOUBLE_EQ(trace.back()["target_cp"].get<double>(), 2.75);
  EXPECT_EQ(s["stages"].size(), 2u);
  // FracTrain's indicator logs its windows: the 5th is the turning point, after it (the last stage) no test.
  const auto windows = read_metrics(temp.str(), "indicator");
  ASSERT_EQ(windows.size(), 12u);
  EXPECT_EQ(windows[4]["turning_point"], 1);
  EXPECT_EQ(windows[4]["stage"], 0);
  EXPECT_EQ(windows[5]["stage"], 1);
  EXPECT_FALSE(windows[5].contains("max_d"));
}

TEST(DfqEndToEnd, CandidatesExecutionTrains) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_dfq_candidates");
  RunConfig c = dfq_run(temp.str(), "resnet8", 320, 32);
  c.dfq.execution = GateExecution::Candidates;
  c.dfq.options = "cifar-paper";
  c.dfq.target_cp = 2.0;
  c.train.iterations = 20;  // two epochs of 10 steps, one evaluation each
  const nlohmann::json s = train_run(c, quiet());
  const auto rows = read_metrics(temp.str());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_GT(rows.back()["window_cp_blocks"].get<double>(), 0.0);
  EXPECT_LT(rows.back()["train_loss"].get<double>(), rows.front()["train_loss"].get<double>() - 0.1);
  EXPECT_LE(s["cost"]["run"]["cp_blocks_percent"].get<double>(), 100.0 * (6 * 4 + 12 * 4 + 6 * 12) / 3072.0 + 1e-9);
}

TEST(DfqEndToEnd, ResumedRunEqualsTheUninterruptedOneBitwise) {
  ASSERT_FASHION_MNIST_INSTALLED();
  auto config_for = [](const std::string& dir) {
    RunConfig c = dfq_run(dir, "resnet8", 200, 32);
    c.dfq.options = "cifar-paper";
    c.dfq.target_cp = 2.0;
    c.train.iterations = 10;
    c.train.eval_every = 4;
    c.train.threads = 1;
    return c;
  };
  test_support::TempDir whole_dir("fractrain_dfq_whole"), split_dir("fractrain_dfq_split");
  const nlohmann::json whole = train_run(config_for(whole_dir.str()), quiet());
  TrainOptions stop = quiet();
  stop.stop_at_step = 6;  // mid evaluation window and mid trace window
  EXPECT_TRUE(train_run(config_for(split_dir.str()), stop).interrupted);
  TrainOptions resume = quiet();
  resume.resume_from = last_checkpoint_path(split_dir.str());
  const nlohmann::json split = train_run(config_for(split_dir.str()), resume);

  EXPECT_EQ(split["cost"]["run"], whole["cost"]["run"]);
  const auto a = read_metrics(whole_dir.str()), b = read_metrics(split_dir.str());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["gate_selection"], b[i]["gate_selection"]) << "record " << i;
    EXPECT_EQ(a[i]["window_cp"], b[i]["window_cp"]) << "record " << i;
  }
  EXPECT_EQ(read_metrics(whole_dir.str(), "cp_trace"), read_metrics(split_dir.str(), "cp_trace"));
  const auto wa = final_weights(config_for(whole_dir.str())), wb = final_weights(config_for(split_dir.str()));
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, tensor] : wa) EXPECT_TRUE(torch::equal(tensor, wb.at(name))) << name;
}
