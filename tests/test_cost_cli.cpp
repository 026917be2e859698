// `fractrain cost` on the paper's settings, and cost in a training run's summary, metrics and resume.
#include <gtest/gtest.h>

#include <fstream>

#include "fractrain/cost/static_cost.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/train/trainer.h"
#include "test_support.h"

using namespace fractrain;
using test_support::run_cli;

namespace {

RunConfig tiny_run(const std::string& dir, int64_t iterations) {
  RunConfig c;
  c.model.name = "resnet8";
  c.data.train_subset = 128;
  c.data.test_subset = 64;
  c.precision.fw = 8;
  c.precision.bw = 8;
  c.train.batch_size = 32;
  c.train.iterations = iterations;
  c.train.eval_every = 2;
  c.train.threads = 1;
  c.output.dir = dir;
  return c;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(CostCli, ResNet74AtTheCifarRecipeMatchesThePaperConvention) {
  // 64,000 iterations of 128 at FW-8/BW-8, stem quantized, classifier FP32: cp x 3 x forward MACs x samples
  // = 3 x 8,192,000 x (0.0625 x 168,214,528 + 640) = 2.5839e14 (the paper reports 2.62e14).
  const ModelInputSpec input{3, 32, 32, 10};
  auto model = create_model("resnet74", input);
  const ModelProfile profile = profile_model(*model, input);
  const PrecisionPlan plan = make_static_plan(*model, Precision::fw_bw(8, 8), QuantizationPolicy{});
  const CostTotals run = summarize(static_step_cost(profile, plan, 128, builtin_hardware_model()),
                                   profile)
                             .scaled(64000);
  EXPECT_DOUBLE_EQ(run.paper_macs(), 3.0 * 8192000 * (168214528 / 16 + 640));
  EXPECT_NEAR(run.paper_macs(), 2.584e14, 0.001e14);

  const auto r = run_cli("cost resnet74 --input 3x32x32 --precision fw8bw8 --iterations 64000 --batch 128");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "paper MACs                   2.584e+14");
  EXPECT_CONTAINS(r.output, "cp (vs FP32)                     6.25%         100.00%");
  EXPECT_CONTAINS(r.output, "stage3.11.conv2");
  EXPECT_CONTAINS(r.output, "not run");  // the stem's error backward
}

TEST(CostCli, TableHasEveryLayerAndBadArgumentsAreRefused) {
  const auto r = run_cli("cost resnet20 --input 1x28x28 --precision fw4bw8 --batch 64");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* part : {"stem", "stage2.0.shortcut_conv", "fc", "4/4/8", "fw4bw8", "fp32", "fw8bw8",
                           "energy vs fp32", "1x28x28"})
    EXPECT_CONTAINS(r.output, part);
  const auto bad_input = run_cli("cost resnet20 --input 3x32");
  EXPECT_EQ(bad_input.exit_code, 2);
  EXPECT_CONTAINS(bad_input.output, "--input '3x32' is not CxHxW");
  const auto bad_model = run_cli("cost resnet21");
  EXPECT_EQ(bad_model.exit_code, 2);
  EXPECT_CONTAINS(bad_model.output, "did you mean 'resnet20'");
  const auto bad_hardware = run_cli("cost resnet20 --hardware /nonexistent.toml");
  EXPECT_EQ(bad_hardware.exit_code, 2);
  EXPECT_CONTAINS(bad_hardware.output, "/nonexistent.toml");
}

TEST(CostCli, TrainingSummaryShowsCostNextToFp32AndFw8Bw8) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir dir("fractrain_cost_summary");
  TrainOptions quiet;
  quiet.quiet = true;
  const nlohmann::json summary = train_run(tiny_run(dir.str(), 4), quiet);
  const auto& cost = summary.at("cost");
  const auto& run = cost.at("run");
  const auto& fp32 = cost.at("references").at("fp32");
  const auto& fw8bw8 = cost.at("references").at("fw8bw8");
  EXPECT_EQ(run.at("samples").get<int64_t>(), 4 * 32);
  EXPECT_EQ(fp32.at("samples").get<int64_t>(), 4 * 32);
  EXPECT_NEAR(run.at("cp_percent").get<double>(), 6.25, 0.05);
  EXPECT_DOUBLE_EQ(run.at("cp_blocks_percent").get<double>(), 6.25);
  EXPECT_DOUBLE_EQ(fp32.at("cp_percent").get<double>(), 100.0);
  // This run is a static FW-8/BW-8 run: it costs exactly its reference, and far less than FP32.
  EXPECT_EQ(run.at("bit_macs"), fw8bw8.at("bit_macs"));
  EXPECT_LT(run.at("energy_j").get<double>(), 0.5 * fp32.at("energy_j").get<double>());
  EXPECT_LT(run.at("latency_s").get<double>(), 0.5 * fp32.at("latency_s").get<double>());
  EXPECT_EQ(cost.at("layers").size(), 10u);  // resnet8: stem, 6 convs, 2 shortcuts, fc
  EXPECT_EQ(cost.at("layers").at(0).at("eb").at("bit_macs").get<double>(), 0.0);  // stem

  const std::string csv = test_support::read_file(dir.file("metrics.csv"));
  EXPECT_CONTAINS(csv, "cp,bit_macs,energy_j,latency_s,fp32_bit_macs,fp32_energy_j,fp32_latency_s,fw8bw8_bit_macs");
  std::ifstream jsonl(dir.file("metrics.jsonl"));
  std::string first;
  std::getline(jsonl, first);
  const auto record = nlohmann::json::parse(first);
  EXPECT_EQ(record.at("cost").at("run").at("samples").get<int64_t>(), 2 * 32);  // cumulative at step 2
  EXPECT_GT(record.at("cost").at("run").at("passes").at("gc").at("bit_macs").get<double>(), 0);
  EXPECT_EQ(read_json(dir.file("summary.json")).at("cost"), cost);
}

TEST(CostCli, ResumedRunCountsTheSameCostAsAnUninterruptedOne) {
  ASSERT_FASHION_MNIST_INSTALLED();
  test_support::TempDir whole("fractrain_cost_whole"), split("fractrain_cost_split");
  TrainOptions quiet;
  quiet.quiet = true;
  const nlohmann::json a = train_run(tiny_run(whole.str(), 6), quiet);  // crosses the epoch of 4 batches
  TrainOptions stop = quiet;
  stop.stop_at_step = 3;
  train_run(tiny_run(split.str(), 6), stop);
  TrainOptions resume = quiet;
  resume.resume_from = last_checkpoint_path(split.str());
  const nlohmann::json b = train_run(tiny_run(split.str(), 6), resume);
  EXPECT_EQ(a.at("cost").at("run"), b.at("cost").at("run"));
  EXPECT_EQ(a.at("cost").at("references"), b.at("cost").at("references"));
  EXPECT_EQ(b.at("cost").at("run").at("samples").get<int64_t>(), 6 * 32);
}
