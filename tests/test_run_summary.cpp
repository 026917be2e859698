// RunSummary, the schema of summary.json: round trips (struct -> JSON -> struct, and the file's bytes), the
// language-model keys that stay null until an evaluation, and damaged summaries that name the file and the key.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "fractrain/train/run_summary.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

namespace {

nlohmann::json cost_totals(double cp_percent, double bit_macs) {
  return {{"samples", 64},  {"cp_percent", cp_percent}, {"cp_blocks_percent", cp_percent},
          {"paper_macs", 1e6}, {"paper_macs_blocks", 9e5}, {"bit_macs", bit_macs},
          {"energy_j", 0.25}, {"latency_s", 0.125},       {"passes", nlohmann::json::object()}};
}

// A classification run with two precision stages, trained from an image folder.
RunSummary classification_summary() {
  RunSummary s;
  s.model = "resnet8";
  s.dataset = "image-folder";
  s.train_samples = 12;
  s.test_samples = 6;
  s.parameters = 78042;
  s.precision = "pfq-manual fw4bw6 -> fw8bw8";
  s.turning_points = nlohmann::json::array({{{"step", 4}, {"to", "fw8bw8"}}});
  s.stages = nlohmann::json::array(
      {{{"stage", 0}, {"precision", "fw4bw6"}, {"first_step", 0}, {"steps", 4}, {"cost", cost_totals(2.5, 1e9)}},
       {{"stage", 1}, {"precision", "fw8bw8"}, {"first_step", 4}, {"steps", 6}, {"cost", cost_totals(6.25, 3e9)}}});
  s.steps = 10;
  s.total_steps = 10;
  s.epochs = 2.5;
  s.skipped_steps = 1;
  s.final_test_accuracy = 0.5;
  s.final_test_loss = 1.25;
  s.best_test_accuracy = 0.6666666666666666;
  s.best_step = 8;
  s.train_seconds = 3.14159;
  s.images_per_second = 123.456;
  s.device = "cpu";
  s.threads = 2;
  s.output_dir = "/tmp/run";
  s.cost = {{"hardware", {{"name", "bitfusion"}}}, {"run", cost_totals(4.375, 4e9)}};
  s.config = {{"model", {{"name", "resnet8"}}}};
  s.task_data = {{"split", {{"name", "classes-a"}, {"classes", {0, 1, 2}}}},
                 {"data",
                  {{"train", {{"dir", "/data/train"}, {"classes", {"apple", "mango", "zebra"}}, {"skipped_corrupt_files", 2}}},
                   {"test", {{"dir", "/data/test"}, {"classes", {"apple", "mango", "zebra"}}, {"skipped_corrupt_files", 1}}}}}};
  return s;
}

RunSummary language_model_summary(bool evaluated) {
  RunSummary s = classification_summary();
  s.model = "transformer-lm";
  s.dataset = "token-file";
  s.stages = nlohmann::json::array({s.stages[1]});
  s.task_data = nlohmann::json::object();
  s.best_test_accuracy = 0.0;
  LanguageModelSummary lm;
  lm.eval_split = "valid";
  if (evaluated) {
    lm.final_test_perplexity = 42.5;
    lm.best_test_loss = 3.7;
    lm.best_test_perplexity = 40.4473;
  }
  s.language_model = lm;
  return s;
}

std::string damaged_summary_error(const std::function<void(nlohmann::json&)>& damage) {
  nlohmann::json j = to_json(classification_summary());
  damage(j);
  return error_of([&] { run_summary_from_json(j, "runs/x/summary.json"); });
}

}  // namespace

TEST(RunSummary, RoundTripsThroughJsonAndTheFile) {
  const RunSummary s = classification_summary();
  const nlohmann::json j = to_json(s);
  EXPECT_EQ(run_summary_from_json(j, "memory"), s);
  // The task's keys sit at the top level of summary.json, beside the run's.
  EXPECT_EQ(j.at("split"), s.task_data.at("split"));
  EXPECT_FALSE(j.contains("eval_split"));

  test_support::TempDir dir("fractrain_run_summary");
  write_run_summary(dir.str(), s);
  EXPECT_EQ(read_run_summary(run_summary_path(dir.str())), s);
  EXPECT_EQ(test_support::read_file(run_summary_path(dir.str())), j.dump(2) + "\n");

  RunSummary other = s;
  other.stages[1]["steps"] = 7;
  EXPECT_NE(other, s);
}

TEST(RunSummary, TypedViewsReadTheOpenEndedParts) {
  const RunSummary s = run_summary_from_json(to_json(classification_summary()), "memory");
  EXPECT_DOUBLE_EQ(s.run_cost().cp_percent, 4.375);
  EXPECT_DOUBLE_EQ(s.run_cost().bit_macs, 4e9);
  EXPECT_DOUBLE_EQ(s.run_cost().energy_j, 0.25);
  EXPECT_DOUBLE_EQ(s.run_cost().latency_s, 0.125);
  const auto stages = s.stage_summaries();
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[1].stage, 1);
  EXPECT_EQ(stages[1].precision, "fw8bw8");
  EXPECT_EQ(stages[1].first_step, 4);
  EXPECT_EQ(stages[1].steps, 6);
  EXPECT_DOUBLE_EQ(stages[1].cost.cp_percent, 6.25);
  const auto folder = s.image_folder();
  ASSERT_TRUE(folder.has_value());
  EXPECT_EQ(folder->dir, "/data/train");
  EXPECT_EQ(folder->classes, 3u);
  EXPECT_EQ(folder->skipped_corrupt_train, 2);
  EXPECT_EQ(folder->skipped_corrupt_test, 1);
  EXPECT_FALSE(language_model_summary(true).image_folder().has_value());
}

TEST(RunSummary, LanguageModelKeysAreNullUntilEvaluated) {
  const RunSummary before = language_model_summary(false);
  const nlohmann::json j = to_json(before);
  EXPECT_EQ(j.at("eval_split"), "valid");
  for (const char* key : {"final_test_perplexity", "best_test_loss", "best_test_perplexity"})
    EXPECT_TRUE(j.at(key).is_null()) << key;
  const RunSummary back = run_summary_from_json(j, "memory");
  EXPECT_EQ(back, before);
  ASSERT_TRUE(back.language_model.has_value());
  EXPECT_FALSE(back.language_model->final_test_perplexity.has_value());

  const RunSummary after = language_model_summary(true);
  const RunSummary evaluated = run_summary_from_json(to_json(after), "memory");
  EXPECT_EQ(evaluated, after);
  EXPECT_DOUBLE_EQ(*evaluated.language_model->best_test_perplexity, 40.4473);
  EXPECT_NE(evaluated, back);
}

TEST(RunSummary, KeepsTheBytesOfAWrittenSummary) {
  // Reading a summary and writing it again changes nothing: the sweep and report tools never rewrite history.
  const std::string text = to_json(language_model_summary(false)).dump(2);
  EXPECT_EQ(to_json(run_summary_from_json(nlohmann::json::parse(text), "memory")).dump(2), text);
}

TEST(RunSummary, ReadsANullNumberAsNaN) {
  // nlohmann::json writes a NaN (a diverged loss) as null; the summary still reads.
  nlohmann::json j = to_json(classification_summary());
  j["final_test_loss"] = nullptr;
  EXPECT_TRUE(std::isnan(run_summary_from_json(j, "memory").final_test_loss));
}

TEST(RunSummary, FinishedMeansRanToTheLastStep) {
  RunSummary s = classification_summary();
  EXPECT_TRUE(s.finished());
  s.interrupted = true;
  EXPECT_FALSE(s.finished());
  s.interrupted = false;
  s.steps = 9;
  EXPECT_FALSE(s.finished());
}

TEST(RunSummary, DamagedSummaryNamesTheFileAndTheKey) {
  const std::string missing = damaged_summary_error([](nlohmann::json& j) { j.erase("final_test_accuracy"); });
  EXPECT_CONTAINS(missing, "runs/x/summary.json");
  EXPECT_CONTAINS(missing, "'final_test_accuracy'");
  EXPECT_CONTAINS(missing, "run it again");

  const std::string mistyped = damaged_summary_error([](nlohmann::json& j) { j["steps"] = "ten"; });
  EXPECT_CONTAINS(mistyped, "runs/x/summary.json");
  EXPECT_CONTAINS(mistyped, "'steps' is string, expected an integer");

  const std::string cost = damaged_summary_error([](nlohmann::json& j) { j["cost"]["run"].erase("cp_percent"); });
  EXPECT_CONTAINS(cost, "runs/x/summary.json");
  EXPECT_CONTAINS(cost, "'cost.run.cp_percent'");

  const std::string stage = damaged_summary_error([](nlohmann::json& j) { j["stages"][1]["first_step"] = 1.5; });
  EXPECT_CONTAINS(stage, "'stages[1].first_step' is number, expected an integer");

  const std::string lm = error_of([] {
    nlohmann::json j = to_json(language_model_summary(false));
    j["best_test_loss"] = "low";
    run_summary_from_json(j, "runs/lm/summary.json");
  });
  EXPECT_CONTAINS(lm, "runs/lm/summary.json");
  EXPECT_CONTAINS(lm, "'best_test_loss' is string, expected a number or null");

  test_support::TempDir dir("fractrain_run_summary");
  test_support::write_file(dir.file("summary.json"), "{\"model\": ");
  const std::string not_json = error_of([&] { read_run_summary(dir.file("summary.json")); });
  EXPECT_CONTAINS(not_json, dir.file("summary.json"));
  EXPECT_CONTAINS(not_json, "not JSON");
  EXPECT_CONTAINS(error_of([&] { read_run_summary(dir.file("absent.json")); }), dir.file("absent.json"));
}
