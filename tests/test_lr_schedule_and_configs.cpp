// Learning-rate schedules as pure functions of the iteration, and every shipped recipe parses.
#include <gtest/gtest.h>

#include <filesystem>

#include "fractrain/train/lr_schedule.h"
#include "fractrain/train/metrics_log.h"
#include "fractrain/train/run_config.h"
#include "test_support.h"

using namespace fractrain;

TEST(LrSchedule, MultistepDividesAtMilestoneEpochs) {
  ScheduleConfig s;
  s.type = "multistep";
  s.milestones = {80, 120};
  s.gamma = 0.1;
  auto at_epoch = [&](int64_t e) { return learning_rate(s, 0.1, ScheduleClock{e * 391, 391, 160 * 391}); };
  EXPECT_DOUBLE_EQ(at_epoch(0), 0.1);
  EXPECT_DOUBLE_EQ(at_epoch(79), 0.1);
  EXPECT_NEAR(at_epoch(80), 0.01, 1e-15);
  EXPECT_NEAR(at_epoch(119), 0.01, 1e-15);
  EXPECT_NEAR(at_epoch(120), 0.001, 1e-15);
}

TEST(LrSchedule, CosineAndWarmup) {
  ScheduleConfig s;
  s.type = "cosine";
  EXPECT_DOUBLE_EQ(learning_rate(s, 0.2, ScheduleClock{0, 10, 100}), 0.2);
  EXPECT_NEAR(learning_rate(s, 0.2, ScheduleClock{50, 10, 100}), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(s, 0.2, ScheduleClock{100, 10, 100}), 0.0, 1e-12);
  s.warmup_iterations = 4;
  EXPECT_NEAR(learning_rate(s, 0.2, ScheduleClock{0, 10, 100}), 0.05, 1e-12);
  EXPECT_NEAR(learning_rate(s, 0.2, ScheduleClock{3, 10, 100}), 0.2 * 0.5 * (1 + std::cos(M_PI * 0.03)), 1e-12);
  s.type = "constant";
  s.warmup_iterations = 0;
  EXPECT_DOUBLE_EQ(learning_rate(s, 0.3, ScheduleClock{77, 10, 100}), 0.3);
}

TEST(Recipes, EveryShippedConfigParsesAndValidates) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(FRACTRAIN_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".toml") continue;
    EXPECT_NO_THROW(load_run_config(entry.path().string())) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 4);
  RunConfig paper = load_run_config(std::string(FRACTRAIN_SOURCE_DIR) + "/configs/cifar10_resnet38_fw8bw8.toml");
  EXPECT_EQ(paper.schedule.milestones, (std::vector<int64_t>{80, 120}));
  EXPECT_EQ(paper.train.epochs, 160);
  EXPECT_EQ(paper.train.batch_size, 128);
  EXPECT_EQ(paper.data.crop_padding, 4);
}

TEST(MetricsLog, ResumeDropsRecordsAfterTheCheckpointStep) {
  test_support::TempDir temp("fractrain_metrics");
  const std::string dir = temp.str();
  {
    MetricsLog log(dir, {"step", "loss"});
    for (int s = 1; s <= 4; ++s) log.append({{"step", s * 10}, {"loss", 1.0 / s}});
  }
  MetricsLog resumed(dir, {"step", "loss"}, /*keep_up_to_step=*/20);
  auto records = resumed.records();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1]["step"], 20);
  resumed.append({{"step", 30}, {"loss", 0.3}});
  EXPECT_EQ(resumed.records().size(), 3u);
}
