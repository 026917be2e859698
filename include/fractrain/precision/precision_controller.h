#pragma once
// The one place that decides precisions, and the only thing the trainer knows about a method (DESIGN.md 6).
// A training step is a protocol of values:
//   plan_for_step(step)            -> the plan the model runs (per-layer precisions; for DFQ: gates on)
//   model.run(inputs, plan)        -> outputs and the decisions the gates took (BlockDecision, device tensors)
//   observe_step(decisions, cost)  -> an optional term for the loss (DFQ's signed cost term)
//   observe_window_loss(...)       -> at the end of every indicator window (PFQ, FracTrain turning points)
//   evaluation_report() / take_trace_record() -> the controller's own metrics and log lines
// Static training, PFQ, DFQ and FracTrain differ only in the controller.
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fractrain/precision/block_decision.h"
#include "fractrain/precision/layer_precision.h"

namespace fractrain {

// A stage change. `differences` and `eps` are the loss-plateau test that fired (empty / 0 for a manual switch).
struct TurningPoint {
  int stage = 0;       // the stage entered
  int64_t step = 0;    // steps completed when it was entered
  double epoch = 0.0;  // the same, in epochs
  std::vector<double> differences;
  double eps = 0.0;
  Precision precision;  // the precision of the stage entered
  std::string label;    // the stage entered as the controller names it ("fw4bw6", "cp 2.00%")
};

nlohmann::json to_json(const TurningPoint& t);
TurningPoint turning_point_from_json(const nlohmann::json& j);  // throws nlohmann::json::exception when damaged

// One window of the loss-plateau indicator (auto PFQ, FracTrain), as indicator.csv records it: why a turning
// point came, or why it has not come yet.
struct IndicatorWindow {
  int64_t step = 0;    // steps completed when the window ended
  double epoch = 0.0;  // the same, in epochs
  int stage = 0;       // the stage in progress during the window (a turning point it fires enters stage + 1)
  double mean_loss = 0.0;
  double scale = 0.0;  // what the differences are divided by: the mean loss of the run's first 10 windows
  double eps = 0.0;    // the threshold the window was tested against
  // d_j = |L_j - L_now| / scale for the 4 windows before this one, oldest first; empty when the window ran no
  // test (fewer than 5 windows since the last turning point, or no stage left to enter).
  std::vector<double> differences;
  bool turning_point = false;
};

// What the cost meter counted for the training step in progress (its forward pass), in percent of FP32: the
// whole network and the gated blocks only.
struct StepCost {
  double cp = 0.0;
  double cp_blocks = 0.0;
  // Data parallel: the whole batch's option indices, [block][sample] across every rank, for the statistics a
  // controller keeps (the decisions passed beside are this rank's, for its loss term). Empty in one process.
  std::vector<std::vector<int64_t>> batch_options{};
  // Deferred host reads (train.host_reads): cp and cp_blocks as 0-d double tensors on the device
  // (CostMeter::step_in_progress_on_device), the two numbers above unset.
  at::Tensor device_cp{}, device_cp_blocks{};
  bool on_device() const { return device_cp.defined(); }
};

// What a controller adds at an evaluation: values for the metrics record and lines for the log.
struct ControllerReport {
  nlohmann::json metrics = nlohmann::json::object();
  std::vector<std::string> log_lines;
};

// A trace the controller keeps between evaluations (DFQ: cp_trace.csv): the file's stem and its columns after
// "step" and "epoch". An empty name: no trace.
struct ControllerTrace {
  std::string name;
  std::vector<std::string> columns;
};

class PrecisionController {
 public:
  virtual ~PrecisionController() = default;

  // The plan that step `step` (0-based: steps completed so far) runs; it may enter a new stage.
  virtual const PrecisionPlan& plan_for_step(int64_t step) = 0;
  // The plan of the stage in progress (evaluation).
  virtual const PrecisionPlan& current_plan() const = 0;
  // The mean training loss of the window that ended after `step` completed steps.
  virtual void observe_window_loss(double mean_loss, int64_t step, double epoch) {}
  // Whether a loss-plateau indicator decides the stages (the run then writes indicator.csv), and the window it
  // saw last, handed out once (nullopt: none since the last call).
  virtual bool has_indicator() const { return false; }
  virtual std::optional<IndicatorWindow> take_indicator_window() { return std::nullopt; }

  virtual int stage() const = 0;
  virtual int stage_count() const = 0;
  virtual Precision precision() const = 0;  // of the stage in progress
  // The gradient width of the stage in progress, for exchanging gradients at it (train.grad_comm = bw; 0 = FP32).
  virtual int gradient_bits() const { return precision().grad; }
  virtual Precision stage_precision(int stage) const = 0;
  // How a stage is named in logs, metrics and summaries: its precision ("fw4bw6"), or for DFQ its target cp.
  virtual std::string stage_label(int stage) const { return to_string(stage_precision(stage)); }
  std::string label() const { return stage_label(stage()); }
  // Names the schedule: "fw8bw8", "pfq-auto fw3,4,6,8/bw6,6,8,8".
  virtual std::string describe() const = 0;
  // Every stage change so far, in order.
  virtual const std::vector<TurningPoint>& turning_points() const = 0;

  // After the forward pass of a training step with a finite loss: the decisions it took and what it cost so far.
  // Returns a term to add to the loss, or an undefined tensor for none (the default). With a cost on the device
  // (StepCost::on_device) nothing may be read back: what the controller keeps of the step waits on the device
  // until read_pending().
  virtual at::Tensor observe_step(const std::vector<BlockDecision>& decisions, const StepCost& cost) { return {}; }
  // Reads what observe_step left on the device (one wait for it). The trainer calls it at its read points, before
  // evaluation_report(), take_trace_record() and state().
  virtual void read_pending() {}
  // CUDA Graphs (train/graphed_step.h): observe_step ran once, at capture, on tensors that every replay rewrites.
  // Takes back what that observation kept, and returns what to call after each replay to keep it again (copies
  // of the tensors then); empty when the controller keeps nothing of a step.
  virtual std::function<void()> take_captured_observation() { return {}; }
  // The columns the controller adds to metrics.csv, and at each evaluation their values since the last one.
  virtual std::vector<std::string> metric_columns() const { return {}; }
  virtual ControllerReport evaluation_report() { return {}; }
  // The controller's trace, written every train.log_every steps (default: none), and its record since the last.
  virtual ControllerTrace trace() const { return {}; }
  virtual nlohmann::json take_trace_record() { return nlohmann::json::object(); }

  // Everything needed for a resumed run to continue identically, and restoring it (nlohmann::json::exception
  // or fractrain::Error when it does not fit this controller).
  virtual nlohmann::json state() const = 0;
  virtual void restore(const nlohmann::json& state) = 0;
};

}  // namespace fractrain
