#include "fractrain/train/run_logs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "fractrain/cost/cost_report.h"
#include "fractrain/report/run_report.h"
#include "fractrain/util/error.h"
#include "fractrain/util/gnuplot.h"

namespace fractrain {
namespace {

const std::vector<std::string> kTrainerColumns = {"step",      "epoch",      "lr",        "train_loss", "train_accuracy",
                                                  "test_loss", "test_accuracy", "images_per_second", "train_seconds",
                                                  "precision", "stage"};
// indicator.csv: each window's mean loss and the plateau test it ran (d1..d4 oldest first, empty without a test).
const std::vector<std::string> kIndicatorColumns = {"step", "epoch", "stage", "window_loss", "scale", "eps",
                                                    "d1",   "d2",    "d3",    "d4",          "max_d", "turning_point"};
// Language models add the perplexity of the training window and of the validation split.
const std::vector<std::string> kLanguageModelColumns = {"train_perplexity", "test_perplexity"};

}  // namespace

RunLogs::RunLogs(const RunConfig& config, bool language_model, const std::vector<std::string>& cost_columns,
                 const PrecisionController& controller, int64_t keep_up_to_step)
    : dir_(config.output.dir), language_model_(language_model) {
  std::vector<std::string> columns = kTrainerColumns;
  if (language_model) columns.insert(columns.end(), kLanguageModelColumns.begin(), kLanguageModelColumns.end());
  for (const auto& c : controller.metric_columns()) columns.push_back(c);
  columns.insert(columns.end(), cost_columns.begin(), cost_columns.end());
  metrics_ = std::make_unique<MetricsLog>(dir_, columns, keep_up_to_step);
  if (config.output.tensorboard) tensorboard_ = std::make_unique<TensorBoardLog>(dir_, keep_up_to_step);
  if (controller.has_indicator())
    indicator_ = std::make_unique<MetricsLog>(dir_, kIndicatorColumns, keep_up_to_step, "indicator");
  const ControllerTrace trace = controller.trace();
  if (trace.name.empty()) return;
  std::vector<std::string> trace_columns = {"step", "epoch"};
  trace_columns.insert(trace_columns.end(), trace.columns.begin(), trace.columns.end());
  trace_ = std::make_unique<MetricsLog>(dir_, trace_columns, keep_up_to_step, trace.name);
  trace_every_ = config.train.log_every > 0 ? config.train.log_every : 20;
}

void RunLogs::log_evaluation(const EvaluationPoint& point, const CostMeter& meter, PrecisionController& controller,
                             ProgressLine& progress) {
  nlohmann::json record = {{"step", point.step},
                           {"epoch", point.epoch},
                           {"lr", point.lr},
                           {"train_loss", point.train_loss},
                           {"train_accuracy", point.train_accuracy},
                           {"test_loss", point.test.loss},
                           {"test_accuracy", point.test.accuracy},
                           {"images_per_second", point.images_per_second},
                           {"train_seconds", point.train_seconds},
                           {"precision", point.precision},
                           {"stage", point.stage}};
  if (language_model_) {
    record["train_perplexity"] = std::exp(point.train_loss);
    record["test_perplexity"] = std::exp(point.test.loss);
  }
  record.update(cost_metrics_record(meter));
  progress.break_line();
  const ControllerReport report = controller.evaluation_report();
  record.update(report.metrics);
  for (const auto& line : report.log_lines) std::printf("%s\n", line.c_str());
  metrics_->append(record);
  if (tensorboard_) tensorboard_->append(record);
  if (language_model_)
    std::printf("eval step %lld: valid loss %.4f  perplexity %.2f  token accuracy %.2f%%  (train loss %.4f, "
                "perplexity %.2f)\n",
                (long long)point.step, point.test.loss, std::exp(point.test.loss), 100.0 * point.test.accuracy,
                point.train_loss, std::exp(point.train_loss));
  else
    std::printf("eval step %lld: test loss %.4f  test accuracy %.2f%%  (train loss %.4f, accuracy %.2f%%)\n",
                (long long)point.step, point.test.loss, 100.0 * point.test.accuracy, point.train_loss,
                100.0 * point.train_accuracy);
  std::printf("%s\n", format_cost_line(meter).c_str());
}

void RunLogs::trace_step(PrecisionController& controller, int64_t step, double epoch) {
  if (!trace_due(step)) return;
  nlohmann::json record = controller.take_trace_record();
  record["step"] = step;
  record["epoch"] = epoch;
  trace_->append(record);
}

void RunLogs::log_indicator_window(const IndicatorWindow& window) {
  if (!indicator_) return;
  nlohmann::json record = {{"step", window.step},         {"epoch", window.epoch},
                           {"stage", window.stage},       {"window_loss", window.mean_loss},
                           {"scale", window.scale},       {"eps", window.eps},
                           {"turning_point", window.turning_point ? 1 : 0}};
  for (size_t j = 0; j < window.differences.size(); ++j) record["d" + std::to_string(j + 1)] = window.differences[j];
  if (!window.differences.empty())
    record["max_d"] = *std::max_element(window.differences.begin(), window.differences.end());
  indicator_->append(record);
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
