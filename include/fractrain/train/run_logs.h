#pragma once
// What a run writes while it trains: metrics.{jsonl,csv}, one record per evaluation with the trainer's columns,
// the task's (a language model's perplexities), the controller's and the cost's; the controller's trace (DFQ:
// cp_trace.csv) every train.log_every steps; the loss indicator's windows and tests (indicator.csv, auto PFQ and
// FracTrain); the metrics' numbers as TensorBoard events (output.tensorboard);
// and training_curves.png at the end.
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/precision/precision_controller.h"
#include "fractrain/train/evaluate.h"
#include "fractrain/train/metrics_log.h"
#include "fractrain/train/progress.h"
#include "fractrain/train/run_config.h"
#include "fractrain/train/tensorboard_log.h"

namespace fractrain {

// One evaluation, as its metrics record and log lines show it.
struct EvaluationPoint {
  int64_t step = 0;
  double epoch = 0.0, lr = 0.0;
  double train_loss = 0.0, train_accuracy = 0.0;  // the training window since the last evaluation
  EvalResult test;
  double images_per_second = 0.0, train_seconds = 0.0;
  std::string precision;  // the controller's label of the stage in progress
  int stage = 0;
};

class RunLogs {
 public:
  // A resumed run passes its checkpoint's step as `keep_up_to_step`: later records are dropped (-1: new run).
  RunLogs(const RunConfig& config, bool language_model, const std::vector<std::string>& cost_columns,
          const PrecisionController& controller, int64_t keep_up_to_step);

  // Appends the evaluation's record (the point, a language model's perplexities, the cost so far, the
  // controller's report since the last evaluation) and prints the controller's lines, the evaluation line and
  // the cost line.
  void log_evaluation(const EvaluationPoint& point, const CostMeter& meter, PrecisionController& controller,
                      ProgressLine& progress);
  // After step `step`: when it is a trace point, the controller's record since the last one.
  void trace_step(PrecisionController& controller, int64_t step, double epoch);
  // One window of the loss-plateau indicator (runs whose controller has one).
  void log_indicator_window(const IndicatorWindow& window);
  // Whether trace_step writes a record after `step` steps.
  bool trace_due(int64_t step) const { return trace_ && step % trace_every_ == 0; }
  // training_curves.png from metrics.csv (a printed note when gnuplot is missing or fails: the CSV has the data).
  void plot_curves(const std::string& title) const;

 private:
  std::string dir_;
  bool language_model_ = false;
  std::unique_ptr<MetricsLog> metrics_, trace_, indicator_;
  std::unique_ptr<TensorBoardLog> tensorboard_;  // null when output.tensorboard is off
  int64_t trace_every_ = 20;
};

}  // namespace fractrain
