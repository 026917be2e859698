// End-to-end training on real Fashion-MNIST slices: FP32, FW-8/BW-8 and integer execution learn (accuracy far
// above the 10% of chance, loss falls), and a stopped-and-resumed run ends bitwise equal to an uninterrupted one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "fractrain/integer/integer_support.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/train/run_checkpoint.h"
#include "fractrain/train/run_components.h"
#include "fractrain/train/trainer.h"
#include "fractrain/util/error.h"
#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::final_weights;
using test_support::read_metrics;

namespace {

RunConfig small_run(const std::string& dir, int fw, int bw) {
  RunConfig c;
  c.model.name = "resnet20";
  c.data.dataset = "fashion-mnist";
  c.data.train_subset = 4096;
  c.data.test_subset = 1000;
  c.precision.fw = fw;
  c.precision.bw = bw;
  c.train.batch_size = 64;
  c.train.iterations = 120;
  c.train.eval_every = 60;
  c.train.seed = 3;
  c.schedule.type = "cosine";
  c.schedule.warmup_iterations = 10;
  c.output.dir = dir;
  return c;
}

nlohmann::json expect_learns(int fw, int bw, ExecutionMode execution = ExecutionMode::Simulated) {
  if (!test_support::have_fashion_mnist()) {
    ADD_FAILURE() << test_support::kFashionMnistMissing;
    return {};
  }
  test_support::TempDir temp("fractrain_learn_fw" + std::to_string(fw) + to_string(execution));
  const std::string dir = temp.str();
  TrainOptions options;
  options.quiet = true;
  RunConfig config = small_run(dir, fw, bw);
  config.precision.execution = execution;
  nlohmann::json summary = train_run(config, options);
  const double accuracy = summary["final_test_accuracy"].get<double>();
  std::printf("FW-%d/BW-%d: test accuracy %.3f after %lld steps\n", fw, bw, accuracy,
              (long long)summary["steps"].get<int64_t>());
  EXPECT_GT(accuracy, 0.55) << "chance is 0.10";
  const auto rows = read_metrics(dir);
  EXPECT_EQ(rows.size(), 2u);
  if (rows.size() != 2u) return summary;
  EXPECT_LT(rows[1]["train_loss"].get<double>(), rows[0]["train_loss"].get<double>());
  EXPECT_LT(rows[1]["train_loss"].get<double>(), 0.8 * std::log(10.0));
  EXPECT_EQ(summary["precision"].get<std::string>(),
            fw ? "fw" + std::to_string(fw) + "bw" + std::to_string(bw) : std::string("fp32"));
  return summary;
}

}  // namespace

TEST(TrainEndToEnd, Fp32ResNet20LearnsFashionMnist) { expect_learns(0, 0); }

TEST(TrainEndToEnd, Fw8Bw8ResNet20LearnsFashionMnist) { expect_learns(8, 8); }

// precision.execution = integer: every quantized layer's three passes run on integer codes, and the summary
// says so next to the measured time. At FW-8/BW-8 on CPUs with 8-bit dot products; at FW-7/BW-7, the widest that
// runs every pass on integers, on CPUs without them (AVX2, as CI's: integer_support.h).
TEST(TrainEndToEnd, IntegerExecutionLearnsFashionMnist) {
  if (!integer_support().available) GTEST_SKIP() << integer_support().detail;
  const int bits = integer_support().max_unsigned_bits;
  const nlohmann::json summary = expect_learns(bits, bits, ExecutionMode::Integer);
  if (summary.is_null()) return;
  const nlohmann::json& execution = summary["cost"]["execution"];
  EXPECT_EQ(execution["mode"], "integer");
  for (const char* pass : {"forward", "error backward", "weight gradient"}) {
    EXPECT_GT(execution["layer_passes_this_session"][pass]["integer"].get<int64_t>(), 0) << pass;
    EXPECT_EQ(execution["layer_passes_this_session"][pass]["simulated"].get<int64_t>(), 0) << pass;
  }
  EXPECT_EQ(execution["last_fallback"], "");
}

TEST(TrainEndToEnd, ResumedRunEqualsUninterruptedRunBitwise) {
  ASSERT_FASHION_MNIST_INSTALLED();
  auto config_for = [](const std::string& dir, int64_t iterations) {
    RunConfig c;
    c.model.name = "resnet8";
    c.data.train_subset = 200;  // 6 batches of 32 per epoch: the run crosses an epoch boundary
    c.data.test_subset = 64;
    c.precision.fw = 4;
    c.precision.bw = 8;
    c.train.batch_size = 32;
    c.train.iterations = iterations;
    c.train.eval_every = 4;
    c.train.threads = 1;
    c.schedule.type = "multistep";
    c.schedule.milestones = {1};
    c.output.dir = dir;
    return c;
  };
  TrainOptions quiet;
  quiet.quiet = true;
  test_support::TempDir whole_dir("fractrain_resume_whole");
  const std::string whole = whole_dir.str();
  test_support::TempDir split_dir("fractrain_resume_split");
  const std::string split = split_dir.str();
  train_run(config_for(whole, 10), quiet);
  TrainOptions interrupted = quiet;
  interrupted.stop_at_step = 7;  // stops mid-epoch, between evaluations, as a signal would
  EXPECT_TRUE(train_run(config_for(split, 10), interrupted).interrupted);
  TrainOptions resume = quiet;
  resume.resume_from = last_checkpoint_path(split);
  nlohmann::json summary = train_run(config_for(split, 10), resume);
  EXPECT_EQ(summary["steps"].get<int64_t>(), 10);

  const auto a = final_weights(config_for(whole, 10));
  const auto b = final_weights(config_for(split, 10));
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  // The metrics files match too (the resumed run rewrote nothing twice).
  const auto ma = read_metrics(whole), mb = read_metrics(split);
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t i = 0; i < ma.size(); ++i)
    for (const char* key : {"step", "train_loss", "train_accuracy", "test_loss", "test_accuracy"})
      EXPECT_EQ(ma[i][key], mb[i][key]) << key << " in record " << i;
}

TEST(TrainEndToEnd, CheckpointOfAnotherModelIsRefused) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir temp("fractrain_other_model");
  const std::string dir = temp.str();
  RunConfig c;
  c.model.name = "resnet8";
  c.data.train_subset = 64;
  c.data.test_subset = 32;
  c.train.batch_size = 32;
  c.train.iterations = 1;
  c.output.dir = dir;
  TrainOptions quiet;
  quiet.quiet = true;
  train_run(c, quiet);
  RunConfig other = c;
  other.model.name = "resnet14";
  auto model = build_model(other, ModelInputSpec{1, 28, 28, 10}, c10::kCPU);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1));
  try {
    load_run_checkpoint(last_checkpoint_path(dir), *model, sgd);
    FAIL() << "expected an error";
  } catch (const fractrain::Error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet8"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("resnet14"), std::string::npos) << e.what();
  }
}
