#pragma once
// summary.json as a type. The trainer fills a RunSummary and writes it; the end-of-run printout, the sweep runner
// and the results table read it back through the same struct. Every key of summary.json is spelled in
// run_summary.cpp only, so a reader cannot drift from what the trainer writes.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fractrain {

// The headline numbers of one cost total (to_json(CostTotals)): a run's, a reference's or a stage's.
struct CostHeadline {
  double cp_percent = 0, bit_macs = 0, energy_j = 0, latency_s = 0;
};

// One precision stage of a run (StageCosts) and what it spent.
struct StageSummary {
  int stage = 0;
  std::string precision;
  int64_t first_step = 0, steps = 0;
  CostHeadline cost;
};

// A streamed image-folder dataset: where it was read from, its classes and the corrupt files it skipped.
struct ImageFolderSummary {
  std::string dir;
  size_t classes = 0;
  int64_t skipped_corrupt_train = 0, skipped_corrupt_test = 0;
};

// Language models: sizes are tokens, the evaluation split is the validation split and the best checkpoint has
// the lowest loss. The values stay empty (null in summary.json) until an evaluation has run: a run interrupted
// before its first one.
struct LanguageModelSummary {
  std::string eval_split;
  std::optional<double> final_test_perplexity, best_test_loss, best_test_perplexity;
};

struct RunSummary {
  std::string model, dataset;
  int64_t train_samples = 0, test_samples = 0;  // images, or tokens of the split
  int64_t parameters = 0;
  std::string precision;  // the controller's description ("fw8bw8", "pfq-auto ...")
  // The open-ended parts stay JSON: they are written as they are and read through the typed views below.
  nlohmann::json turning_points = nlohmann::json::array();  // to_json(TurningPoint) each
  nlohmann::json stages = nlohmann::json::array();          // StageCosts::summary: each stage with its full cost
  int64_t steps = 0, total_steps = 0;
  double epochs = 0;
  bool interrupted = false;
  int64_t skipped_steps = 0;  // steps the non-finite guard skipped
  double final_test_accuracy = 0, final_test_loss = 0;
  double best_test_accuracy = 0;  // 0 for a language model: its best is by loss (language_model)
  int64_t best_step = -1;
  double train_seconds = 0, images_per_second = 0;
  std::string device;
  int threads = 1;
  std::string output_dir;
  nlohmann::json cost = nlohmann::json::object();    // cost_summary_json: hardware, totals, per-layer cost
  nlohmann::json config = nlohmann::json::object();  // to_json(RunConfig)
  // TrainingTask::summary(): top-level keys about the data (the split and class ids, an image folder's report).
  nlohmann::json task_data = nlohmann::json::object();
  std::optional<LanguageModelSummary> language_model;  // language-model runs only

  // Typed views of the open-ended parts. They throw fractrain::Error when a part lacks what they read;
  // run_summary_from_json checks them, so on a summary read back they do not throw.
  CostHeadline run_cost() const;                   // the whole run's cost
  std::vector<StageSummary> stage_summaries() const;
  std::optional<ImageFolderSummary> image_folder() const;  // empty unless the data came from image folders

  // Ran to its last step (not stopped early, not interrupted).
  bool finished() const;
};

bool operator==(const RunSummary& a, const RunSummary& b);
inline bool operator!=(const RunSummary& a, const RunSummary& b) { return !(a == b); }

nlohmann::json to_json(const RunSummary& summary);
// Lets a RunSummary convert to nlohmann::json where a caller wants the JSON itself (tests read keys of it).
void to_json(nlohmann::json& out, const RunSummary& summary);

// Throws fractrain::Error naming `where` (the file) and the missing or mistyped key, and saying what to do.
RunSummary run_summary_from_json(const nlohmann::json& summary, const std::string& where);

// RUN_DIR/summary.json.
std::string run_summary_path(const std::string& run_dir);
// Throws fractrain::Error naming the file when it cannot be read, is not JSON or lacks a key.
RunSummary read_run_summary(const std::string& path);
// Replaces RUN_DIR/summary.json atomically (a run killed while writing leaves the previous one).
void write_run_summary(const std::string& run_dir, const RunSummary& summary);

}  // namespace fractrain
