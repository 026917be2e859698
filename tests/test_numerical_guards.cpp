// Numerical guards: an injected NaN (TrainOptions::inject_nan = STEP:LAYER) is caught at that step and the message
// names the step and the layer; with train.on_nonfinite = skip the run skips the step, lowers the learning
// rate and goes on.
#include <gtest/gtest.h>

#include <cstdlib>

#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;
using test_support::quiet;
using test_support::read_metrics;

namespace {

// Quiet training options that inject a NaN (STEP:LAYER).
TrainOptions injecting(const std::string& fault) {
  TrainOptions options = quiet();
  options.inject_nan = fault;
  return options;
}

RunConfig guarded_run(const std::string& dir) {
  RunConfig c = test_support::small_run(dir, "resnet8", 128, 32);
  c.train.iterations = 6;
  c.train.eval_every = 6;
  return c;
}

}  // namespace

TEST(NumericalGuards, InjectedNanStopsTheRunNamingStepAndLayer) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_nan_stop");
  const std::string message = error_of([&] { train_run(guarded_run(temp.str()), injecting("3:stage2.0.conv2")); });
  EXPECT_CONTAINS(message, "at step 3 ");
  EXPECT_CONTAINS(message, "layer stage2.0.conv2 (conv) produced NaN/Inf");
  EXPECT_CONTAINS(message, "its input was finite");
  EXPECT_CONTAINS(message, "train.on_nonfinite=skip");
}

TEST(NumericalGuards, SkipPolicySkipsTheStepAndLowersTheLearningRate) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_nan_skip");
  RunConfig c = guarded_run(temp.str());
  c.train.on_nonfinite = "skip";
  c.train.nonfinite_lr_factor = 0.5;
  const nlohmann::json s = train_run(c, injecting("2:stem"));
  EXPECT_EQ(s["skipped_steps"], 1);
  EXPECT_EQ(s["steps"], 6);
  const auto rows = read_metrics(temp.str());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_DOUBLE_EQ(rows[0]["lr"].get<double>(), 0.05 * 0.5);  // constant schedule, one skip
  EXPECT_TRUE(std::isfinite(rows[0]["train_loss"].get<double>()));  // the skipped step is not averaged in
}

TEST(NumericalGuards, BadFaultSpecificationsAreRefused) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_nan_spec");
  EXPECT_CONTAINS(error_of([&] { train_run(guarded_run(temp.str()), injecting("3:nowhere")); }),
                  "no quantized layer 'nowhere'");
  EXPECT_CONTAINS(error_of([&] { train_run(guarded_run(temp.str()), injecting("x")); }), "STEP:LAYER");
}
