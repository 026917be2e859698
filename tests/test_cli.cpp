// The command line as a user meets it: listing, training, evaluating, and clear errors (exit code 2, a message
// naming the problem) for bad input.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_support.h"

using fractrain::test_support::TempDir;
using fractrain::test_support::run_cli;
using fractrain::test_support::run_shell;

namespace {

const std::string kTiny =
    "--set model.name=resnet8 --set data.train_subset=128 --set data.test_subset=64 --set train.batch_size=32 ";

void expect_error(const std::string& args, const std::string& must_contain) {
  auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("error"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(must_contain), std::string::npos) << "missing '" << must_contain << "' in: " << r.output;
}

}  // namespace

TEST(Cli, ListsModels) {
  auto r = run_cli("models");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* m : {"resnet20", "resnet38", "resnet74", "resnet110", "resnet164"})
    EXPECT_NE(r.output.find(m), std::string::npos) << m;
}

TEST(Cli, RejectsBadConfigValuesWithClearMessages) {
  expect_error("train --set train.batchsize=3", "did you mean 'train.batch_size'");
  expect_error("train --set precision.fw=33", "precision.fw = 33");
  expect_error("train --set precision.bw=-1", "precision.bw");
  expect_error("train --config /nonexistent/recipe.toml", "/nonexistent/recipe.toml");
  TempDir temp("fractrain_cli_bad_toml");
  const std::string dir = temp.str();
  std::ofstream(dir + "/r.toml") << "[train]\nepochs = 2\nbatch_sise = 3\n";
  expect_error("train --config " + dir + "/r.toml", "did you mean 'train.batch_size'");
  std::ofstream(dir + "/s.toml") << "[train]\nepochs = \"two\"\n";
  expect_error("train --config " + dir + "/s.toml", "train.epochs");
}

TEST(Cli, RejectsUnknownModelsAndMissingData) {
  TempDir temp("fractrain_cli_bad_names");
  const std::string dir = temp.str();
  expect_error("train --set model.name=resnet21 --set output.dir=" + dir, "unknown model 'resnet21'");
  expect_error("train --set data.dataset=cifar11 --set output.dir=" + dir, "cifar11");
  expect_error("train --set data.path=/nonexistent/fmnist --set output.dir=" + dir, "/nonexistent/fmnist");
}

TEST(Cli, RejectsCorruptDataFiles) {
  TempDir temp("fractrain_cli_corrupt_idx");
  const std::string dir = temp.str();
  // A gzipped IDX image file whose header promises more images than it holds.
  gzFile f = gzopen((dir + "/train-images-idx3-ubyte.gz").c_str(), "wb");
  const unsigned char header[16] = {0, 0, 8, 3, 0, 0, 0, 100, 0, 0, 0, 28, 0, 0, 0, 28};
  gzwrite(f, header, sizeof header);
  gzclose(f);
  for (const char* name : {"train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    std::ofstream(dir + "/" + name) << "x";
  expect_error("train --set data.path=" + dir + " --set output.dir=" + dir + "/run", "train-images-idx3-ubyte.gz");
}

TEST(Cli, TrainsEvaluatesAndRejectsDamagedCheckpoints) {
  ASSERT_FASHION_MNIST_INSTALLED();
  TempDir temp("fractrain_cli_train_eval");
  const std::string dir = temp.str();
  auto r = run_cli("train -q " + kTiny + "--set train.iterations=4 --set precision.fw=8 --set precision.bw=8 " +
                   "--set output.dir=" + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("fractrain run summary"), std::string::npos);
  for (const char* file : {"summary.json", "metrics.csv", "metrics.jsonl", "config.toml", "checkpoints/last.ckpt"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + file)) << file;

  auto e = run_cli("eval --json " + dir + "/checkpoints/last.ckpt");
  ASSERT_EQ(e.exit_code, 0) << e.output;
  auto result = nlohmann::json::parse(e.output.substr(e.output.find('{')));
  EXPECT_EQ(result["precision"], "fw8bw8");
  EXPECT_EQ(result["test_samples"], 64);

  // Truncate a copy of the checkpoint: eval names the file and refuses it.
  const std::string broken = dir + "/broken.ckpt";
  std::filesystem::copy_file(dir + "/checkpoints/last.ckpt", broken);
  std::filesystem::resize_file(broken, std::filesystem::file_size(broken) / 2);
  expect_error("eval " + broken, "broken.ckpt");
  // Resuming with a config that changes what is computed is refused.
  expect_error("train " + kTiny + "--set train.iterations=8 --set precision.fw=4 --set output.dir=" + dir +
                   " --resume",
               "precision.fw");
}

TEST(Cli, SigtermWritesAFinalCheckpointAndTheRunResumes) {
  ASSERT_FASHION_MNIST_INSTALLED();
  TempDir temp("fractrain_cli_sigterm");
  const std::string dir = temp.str();
  // A run far too long to finish; SIGTERM after a few seconds must stop it at a step boundary with a checkpoint.
  auto r = run_shell("timeout --preserve-status -s TERM 6 " + std::string(FRACTRAIN_CLI_PATH) + " train " + kTiny +
                     "--set train.iterations=100000 --set train.log_every=1 --set output.dir=" + dir);
  EXPECT_EQ(r.exit_code, 130) << r.output;
  EXPECT_NE(r.output.find("stopped at step"), std::string::npos) << r.output;
  std::ifstream summary_file(dir + "/summary.json");
  ASSERT_TRUE(summary_file.good());
  auto summary = nlohmann::json::parse(summary_file);
  EXPECT_TRUE(summary["interrupted"].get<bool>());
  const int64_t stopped_at = summary["steps"].get<int64_t>();
  ASSERT_GT(stopped_at, 0);
  auto resumed = run_cli("train -q --resume " + dir + "/checkpoints/last.ckpt --set train.iterations=" +
                         std::to_string(stopped_at + 2));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos);
  std::ifstream final_file(dir + "/summary.json");
  EXPECT_EQ(nlohmann::json::parse(final_file)["steps"].get<int64_t>(), stopped_at + 2);
}

TEST(Cli, DfqTrainsEvaluatesWithAndWithoutGatesAndReports) {
  ASSERT_FASHION_MNIST_INSTALLED();
  TempDir temp("fractrain_cli_dfq");
  const std::string dir = temp.str();
  auto r = run_cli("train -q " + kTiny + "--set train.iterations=4 --set train.eval_every=2 --set train.log_every=2 " +
                   "--set precision.mode=dfq " +
                   "--set dfq.options=cifar-paper --set dfq.target_cp=2 --set output.dir=" + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("gates: cp"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir + "/cp_trace.csv"));

  auto gated = run_cli("eval --json " + dir + "/checkpoints/last.ckpt");
  ASSERT_EQ(gated.exit_code, 0) << gated.output;
  EXPECT_EQ(nlohmann::json::parse(gated.output.substr(gated.output.find('{')))["precision"], "cp 2.00%");
  auto fixed = run_cli("eval --json --precision fw8bw8 " + dir + "/checkpoints/last.ckpt");
  ASSERT_EQ(fixed.exit_code, 0) << fixed.output;
  EXPECT_EQ(nlohmann::json::parse(fixed.output.substr(fixed.output.find('{')))["precision"], "fw8bw8");

  auto report = run_cli("report " + dir + " --epochs 0");
  ASSERT_EQ(report.exit_code, 0) << report.output;
  for (const char* file :
       {"bit_allocation.png", "bit_allocation.svg", "cp_trace.png", "training_curves.svg", "curves_vs_cost.png"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/report/" + file)) << file;
  expect_error("report " + dir + " --epochs 99", "no evaluation at or after epoch 99");
  expect_error("report " + dir + "/nowhere", "not a directory");
  // A target the options cannot reach, and an unknown option set, are refused before training.
  expect_error("train " + kTiny + "--set precision.mode=dfq --set dfq.target_cp=7 --set output.dir=" + dir,
               "outside what the options");
  expect_error("train " + kTiny + "--set precision.mode=dfq --set dfq.options=cifar-relase --set output.dir=" + dir,
               "did you mean 'cifar-release'");
}
