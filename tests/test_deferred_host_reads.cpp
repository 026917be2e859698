// Deferred host reads (train.host_reads = deferred): a step's loss, accuracy and NaN check add up on the device and
// are read at the trainer's read points. On the CPU the same code runs, so these tests check what a GPU run would
// do: the same training as per-step reads (bitwise-equal weights, the same turning points), a NaN stops the run
// naming the step it came from, and the combinations that cannot work are refused with the key to change.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <limits>

#include "fractrain/train/deferred_step_totals.h"
#include "fractrain/train/progress.h"
#include "fractrain/train/resume_compatibility.h"
#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;
using test_support::final_weights;
using test_support::quiet;
using test_support::read_metrics;

namespace {

at::Tensor scalar(double v) { return torch::tensor(v, torch::kFloat); }
at::Tensor count(int64_t v) { return torch::tensor(v, torch::kLong); }
at::Tensor flag(bool v) { return torch::tensor(v, torch::kBool); }

}  // namespace

TEST(DeferredStepTotals, SumsStepsUntilTakenAndKeepsTheFirstNonfiniteStep) {
  DeferredStepTotals totals;
  EXPECT_EQ(totals.take().steps, 0);  // nothing pending: nothing read
  totals.add(1, scalar(0.5), count(3), flag(true), 4, 4);
  totals.add(2, scalar(0.25), count(4), flag(true), 4, 4);
  EXPECT_EQ(totals.pending_steps(), 2);
  DeferredStepTotals::Read r = totals.take();
  EXPECT_EQ(r.steps, 2);
  EXPECT_DOUBLE_EQ(r.totals.loss_sum, 0.5 * 4 + 0.25 * 4);
  EXPECT_DOUBLE_EQ(r.totals.correct, 7);
  EXPECT_DOUBLE_EQ(r.totals.predictions, 8);
  EXPECT_DOUBLE_EQ(r.totals.samples, 8);
  EXPECT_FALSE(r.totals.nonfinite);
  EXPECT_EQ(r.first_nonfinite_step, 0);
  EXPECT_EQ(totals.pending_steps(), 0);

  totals.add(3, scalar(1.0), count(1), flag(true), 2, 2);
  totals.add(4, scalar(std::numeric_limits<double>::quiet_NaN()), count(0), flag(false), 2, 2);
  totals.add(5, scalar(std::numeric_limits<double>::quiet_NaN()), count(0), flag(false), 2, 2);
  r = totals.take();
  EXPECT_TRUE(r.totals.nonfinite);
  EXPECT_EQ(r.first_nonfinite_step, 4);  // not 5: later steps inherit the first one's NaN
  EXPECT_EQ(r.steps, 3);
}

TEST(DeferredStepTotals, AutoDefersOnCudaInOneProcessThatStopsOnNonfinite) {
  TrainConfig train;
  const c10::Device cpu(c10::kCPU), cuda("cuda:0");
  EXPECT_FALSE(defers_host_reads(train, cpu, false));
  EXPECT_TRUE(defers_host_reads(train, cuda, false));
  EXPECT_FALSE(defers_host_reads(train, cuda, true));  // data parallel: the ranks agree on each step
  train.on_nonfinite = "skip";
  EXPECT_FALSE(defers_host_reads(train, cuda, false));
  train.host_reads = "every_step";
  train.on_nonfinite = "stop";
  EXPECT_FALSE(defers_host_reads(train, cuda, false));
  train.host_reads = "deferred";
  EXPECT_TRUE(defers_host_reads(train, cpu, false));
}

TEST(DeferredStepTotals, DeferredReadsAreRefusedWhereTheyCannotWork) {
  TrainConfig train;
  train.host_reads = "deferred";
  train.on_nonfinite = "skip";
  const std::string skip = error_of([&] { defers_host_reads(train, c10::Device(c10::kCPU), false); });
  EXPECT_CONTAINS(skip, "train.on_nonfinite = skip");
  EXPECT_CONTAINS(skip, "train.host_reads = every_step");
  train.on_nonfinite = "stop";
  const std::string ranks = error_of([&] { defers_host_reads(train, c10::Device(c10::kCPU), true); });
  EXPECT_CONTAINS(ranks, "one process");
  EXPECT_CONTAINS(ranks, "train.host_reads = every_step");
}

TEST(ProgressLine, ShowsReadValuesWithTheRateOfEveryCountedStep) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  ProgressLine line(8, 4, out);
  for (int64_t step = 1; step <= 3; ++step) line.count_step(step, 32);
  line.show(3, 0.3, 9.0, 0.1, 0.05);  // not a step the line prints at
  line.count_step(4, 32);
  line.show(4, 0.4, 1.25, 0.5, 0.05);
  std::rewind(out);
  char text[512] = {};
  const size_t n = std::fread(text, 1, sizeof text - 1, out);
  std::fclose(out);
  const std::string printed(text, n);
  EXPECT_CONTAINS(printed, "step 4/8");
  EXPECT_CONTAINS(printed, "loss 1.2500");
  EXPECT_CONTAINS(printed, "acc 50.00%");
  EXPECT_EQ(printed.find("step 3/8"), std::string::npos) << printed;
}

// PFQ with the loss indicator on 3-step windows and progress reads every 4 steps: the read points of deferred reads
// (3, 4, 6, 8, 9, 12, ...: window ends, progress lines, evaluations) are not those of per-step reads (every step),
// yet the run is the same.
TEST(DeferredHostReads, TrainTheSameRunAsPerStepReads) {
  ASSERT_FASHION_MNIST_INSTALLED();
  auto config_for = [](const std::string& dir, const std::string& reads) {
    RunConfig c = test_support::small_run(dir, "resnet8", 200, 32);
    c.precision.mode = precision_mode_names().parse("pfq-auto", "precision.mode");
    c.precision.pfq_fw = {4, 6, 8};
    c.precision.pfq_bw = {8, 8, 8};
    c.precision.pfq_window_iterations = 3;
    c.precision.pfq_eps = 10.0;  // wide: the indicator fires once it has its windows
    c.train.iterations = 20;  // the indicator has its 5 windows at step 15
    c.train.eval_every = 6;
    c.train.log_every = 4;
    c.train.host_reads = reads;
    return c;
  };
  test_support::TempDir per_step_dir("fractrain_reads_every"), deferred_dir("fractrain_reads_deferred");
  const nlohmann::json per_step = train_run(config_for(per_step_dir.str(), "every_step"), quiet());
  const nlohmann::json deferred = train_run(config_for(deferred_dir.str(), "deferred"), quiet());

  ASSERT_GE(per_step["turning_points"].size(), 1u);
  ASSERT_EQ(deferred["turning_points"].size(), per_step["turning_points"].size());
  for (size_t i = 0; i < per_step["turning_points"].size(); ++i) {
    EXPECT_EQ(deferred["turning_points"][i]["step"], per_step["turning_points"][i]["step"]);
    EXPECT_EQ(deferred["turning_points"][i]["stage"], per_step["turning_points"][i]["stage"]);
  }
  EXPECT_EQ(deferred["final_test_accuracy"], per_step["final_test_accuracy"]);
  const auto a = final_weights(config_for(per_step_dir.str(), "every_step"));
  const auto b = final_weights(config_for(deferred_dir.str(), "deferred"));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;

  // The logged training curve: the same steps' losses, summed in another order (chunks of read steps).
  const auto rows_a = read_metrics(per_step_dir.str()), rows_b = read_metrics(deferred_dir.str());
  ASSERT_EQ(rows_a.size(), rows_b.size());
  ASSERT_GE(rows_a.size(), 2u);
  for (size_t i = 0; i < rows_a.size(); ++i) {
    const double loss = rows_a[i]["train_loss"].get<double>();
    EXPECT_NEAR(rows_b[i]["train_loss"].get<double>(), loss, 1e-12 * loss) << "row " << i;
    EXPECT_EQ(rows_b[i]["train_accuracy"], rows_a[i]["train_accuracy"]) << "row " << i;
  }
}

TEST(DeferredHostReads, ANanStopsTheRunAtTheNextReadNamingItsStep) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_reads_nan");
  RunConfig c = test_support::small_run(temp.str(), "resnet8", 128, 32);
  c.train.iterations = 6;
  c.train.eval_every = 6;
  c.train.log_every = 4;
  c.train.host_reads = "deferred";
  TrainOptions options = quiet();
  options.inject_nan = "2:stage2.0.conv2";
  const std::string message = error_of([&] { train_run(c, options); });
  EXPECT_CONTAINS(message, "at step 2 ");
  EXPECT_CONTAINS(message, "seen at step 4");
  EXPECT_CONTAINS(message, "train.host_reads = every_step");
  // Nothing computed after the NaN was saved: the first checkpoint was due at step 6.
  EXPECT_FALSE(std::filesystem::exists(last_checkpoint_path(temp.str())));
}

// When the host reads changes nothing a step computes (the test above): a run may resume with another policy, e.g.
// on a GPU (auto: deferred) after starting on a CPU (auto: every step).
TEST(DeferredHostReads, AResumeMayChangeThePolicy) {
  RunConfig before, now;
  now.train.host_reads = "deferred";
  EXPECT_TRUE(compute_differences(before, now).empty());
}
