#include "fractrain/train/run_logs.h"

#include <cstdio>
#include <filesystem>

#include "fractrain/report/run_report.h"
#include "fractrain/util/error.h"
#include "fractrain/util/gnuplot.h"

namespace fractrain {
namespace {

const std::vector<std::string> kTrainerColumns = {"step",      "epoch",      "lr",        "train_loss", "train_accuracy",
                                                  "test_loss", "test_accuracy", "images_per_second", "train_seconds",
                                                  "precision", "stage"};
// Language models add the perplexity of the training window and of the validation split.
const std::vector<std::string> kLanguageModelColumns = {"train_perplexity", "test_perplexity"};

}  // namespace

RunLogs::RunLogs(const RunConfig& config, bool language_model, const std::vector<std::string>& cost_columns,
                 const PrecisionController& controller, int64_t keep_up_to_step)
    : dir_(config.output.dir) {
  std::vector<std::string> columns = kTrainerColumns;
  if (language_model) columns.insert(columns.end(), kLanguageModelColumns.begin(), kLanguageModelColumns.end());
  for (const auto& c : controller.metric_columns()) columns.push_back(c);
  columns.insert(columns.end(), cost_columns.begin(), cost_columns.end());
  metrics_ = std::make_unique<MetricsLog>(dir_, columns, keep_up_to_step);
  const ControllerTrace trace = controller.trace();
  if (trace.name.empty()) return;
  std::vector<std::string> trace_columns = {"step", "epoch"};
  trace_columns.insert(trace_columns.end(), trace.columns.begin(), trace.columns.end());
  trace_ = std::make_unique<MetricsLog>(dir_, trace_columns, keep_up_to_step, trace.name);
  trace_every_ = config.train.log_every > 0 ? config.train.log_every : 20;
}

void RunLogs::trace_step(PrecisionController& controller, int64_t step, double epoch) {
  if (!trace_ || step % trace_every_ != 0) return;
  nlohmann::json record = controller.take_trace_record();
  record["step"] = step;
  record["epoch"] = epoch;
  trace_->append(record);
}

void RunLogs::plot_curves(const std::string& title) const {
  if (metrics_->records().empty()) return;
  if (!gnuplot_available()) {
    std::printf("note: gnuplot not found, no training_curves.png (apt-get install gnuplot-nox)\n");
    return;
  }
  try {
    plot_training_curves(metrics_->csv_path(), title,
                         (std::filesystem::path(dir_) / "training_curves.png").string());
  } catch (const Error& e) {
    std::printf("note: no training curves plot: %s\n", e.what());  // the CSV has the same data
  }
}

}  // namespace fractrain
