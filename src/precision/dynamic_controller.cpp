#include "fractrain/precision/dynamic_controller.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>

#include "fractrain/precision/gating_cost.h"
#include "fractrain/precision/precision_mode.h"
#include "fractrain/util/error.h"

namespace fractrain {

std::vector<double> fractrain_targets(double total_cp, double step, int stages) {
  if (stages < 1) throw Error("FracTrain needs at least 1 stage, got " + std::to_string(stages));
  const double first = total_cp - step * (stages - 1) / 2.0;
  if (first <= 0)
    throw Error(fmt::format("FracTrain: the first stage's target cp would be {:.3g}% (dfq.target_cp {} - "
                            "dfq.cp_step {} x (stages - 1) / 2); raise the target or lower the step or stages",
                            first, total_cp, step));
  std::vector<double> targets;
  for (int i = 0; i < stages; ++i) targets.push_back(first + step * i);
  return targets;
}

namespace {

std::vector<double> checked_targets(std::vector<double> targets) {
  if (targets.empty()) throw Error("DFQ: no target cp");
  for (double t : targets)
    if (!(t > 0 && t <= 100)) throw Error(fmt::format("DFQ: target cp {}% is not in (0, 100]", t));
  return targets;
}

std::string target_label(double target) { return fmt::format("cp {:.2f}%", target); }

// DFQ: one stage; FracTrain: a stage per target, advanced by the loss indicator.
StagedSchedule target_schedule(const std::vector<double>& targets, Precision precision, bool progressive,
                               PlateauSettings settings) {
  std::vector<StageInfo> stages;
  for (double t : targets) stages.push_back({precision, target_label(t)});
  if (!progressive) return StagedSchedule::single(stages.front());
  return StagedSchedule::by_indicator(std::move(stages), settings);
}

}  // namespace

DynamicController::DynamicController(OptionSet options, PrecisionPlan plan, std::vector<double> targets,
                                     CostSteering steering, std::vector<std::string> blocks, bool progressive,
                                     PlateauSettings settings)
    : options_(std::move(options)),
      steering_options_(steering.weight_bits > 0 ? options_.with_weight_bits(steering.weight_bits) : options_),
      plan_(std::move(plan)),
      targets_(checked_targets(std::move(targets))),
      steering_(steering),
      schedule_(target_schedule(targets_, precision(), progressive, settings)),
      eval_window_(blocks, options_.size()),
      trace_window_(blocks, options_.size()) {
  if (steering_.beta < 0 || steering_.dead_band < 0) throw Error("DFQ: beta and dead band must be >= 0");
  if (steers_own_width() && !steering_.blocks_only)
    throw Error(fmt::format("DFQ: steering at {}-bit weights while the layers run {}-bit ones counts the gated "
                            "blocks only; set dfq.cp_scope = \"blocks\" or dfq.steering_weight_bits = 0",
                            steering_options_.weight_bits(), options_.weight_bits()));
  plan_.gating = true;
}

std::unique_ptr<DynamicController> DynamicController::dfq(OptionSet options, PrecisionPlan plan, double target_cp,
                                                          CostSteering steering, std::vector<std::string> blocks) {
  return std::unique_ptr<DynamicController>(new DynamicController(std::move(options), std::move(plan), {target_cp},
                                                                  steering, std::move(blocks), false, {}));
}

std::unique_ptr<DynamicController> DynamicController::fractrain(OptionSet options, PrecisionPlan plan,
                                                                std::vector<double> targets, CostSteering steering,
                                                                PlateauSettings settings,
                                                                std::vector<std::string> blocks) {
  return std::unique_ptr<DynamicController>(new DynamicController(
      std::move(options), std::move(plan), std::move(targets), steering, std::move(blocks), true, settings));
}

void DynamicController::hold_last_stage_from(int64_t step, int64_t steps_per_epoch) {
  schedule_.hold_last_stage_from(step, steps_per_epoch);
}

const PrecisionPlan& DynamicController::plan_for_step(int64_t step) {
  schedule_.advance_to_step(step);
  plan_.noise_step = static_cast<uint64_t>(step);
  return plan_;
}

void DynamicController::observe_window_loss(double mean_loss, int64_t step, double epoch) {
  schedule_.observe_window_loss(mean_loss, step, epoch);
}

std::string DynamicController::stage_label(int stage) const { return target_label(targets_.at(static_cast<size_t>(stage))); }

std::string DynamicController::describe() const {
  std::string targets;
  for (size_t i = 0; i < targets_.size(); ++i) targets += fmt::format("{}{:.3g}", i ? "," : "", targets_[i]);
  const PrecisionMode mode = schedule_.by_indicator() ? PrecisionMode::FracTrain : PrecisionMode::Dfq;
  return fmt::format("{} {} target cp {}%{}{}{}", to_string(mode), options_.describe(), targets,
                     steering_.blocks_only ? " (blocks)" : "",
                     steers_own_width() ? fmt::format(", steering at w{}", steering_options_.weight_bits()) : "",
                     schedule_.last_stage_step() >= 0
                         ? fmt::format(", last target from step {}", schedule_.last_stage_step())
                         : "");
}

int DynamicController::gradient_bits() const {
  int widest = 0;
  for (size_t k = 0; k < options_.size(); ++k) {
    const Precision& p = options_.at(k);
    if (p.skip) continue;
    if (p.grad == 0) return 0;  // an FP32 gradient option: exchange at FP32
    widest = std::max(widest, p.grad);
  }
  return widest;
}

double DynamicController::cost_sign(double batch_cp) const {
  const double target = target_cp();
  if (steering_.dead_band > 0 && std::abs(batch_cp - target) < steering_.dead_band) return 0.0;
  return batch_cp < target ? -1.0 : 1.0;
}

void DynamicController::record_batch(const std::vector<std::vector<int64_t>>& decisions, double cp,
                                     double cp_blocks) {
  eval_window_.add_batch(decisions, cp, cp_blocks);
  trace_window_.add_batch(decisions, cp, cp_blocks);
}

double DynamicController::steered_cp(const std::vector<BlockDecision>& decisions,
                                     const std::vector<std::vector<int64_t>>& chosen, const StepCost& cost) const {
  if (steers_own_width()) return blocks_cp(decisions, chosen, steering_options_);
  return steering_.blocks_only ? cost.cp_blocks : cost.cp;
}

at::Tensor DynamicController::cost_sign(const at::Tensor& batch_cp) const {
  const double target = target_cp();
  // -1 below the target, +1 at or above it: the comparisons of the host's cost_sign, in double.
  at::Tensor sign = 1.0 - 2.0 * batch_cp.lt(target).to(at::kDouble);
  if (steering_.dead_band > 0) sign = sign * (batch_cp - target).abs().ge(steering_.dead_band).to(at::kDouble);
  return sign;
}

at::Tensor DynamicController::observe_step(const std::vector<BlockDecision>& decisions, const StepCost& cost) {
  if (cost.on_device()) return observe_step_on_device(decisions, cost);
  const std::vector<std::vector<int64_t>> chosen =
      cost.batch_options.empty() ? options_on_host(decisions) : cost.batch_options;
  const double sign = cost_sign(steered_cp(decisions, chosen, cost));
  record_batch(chosen, cost.cp, cost.cp_blocks);  // what ran, at the widths it ran
  if (sign == 0.0 || steering_.beta == 0.0) return {};
  return (sign * steering_.beta) * gating_cost(decisions, steering_options_);
}

// observe_step without a host read: the decisions' counts and the batch's cp wait on the device for read_pending();
// a sign of 0 (dead band) multiplies the term rather than dropping it, which leaves the loss and every gradient as
// they would be without it.
at::Tensor DynamicController::observe_step_on_device(const std::vector<BlockDecision>& decisions,
                                                     const StepCost& cost) {
  if (!cost.batch_options.empty())
    throw Error("DFQ: decisions gathered from several ranks cannot be observed on the device");
  const at::Tensor counts = option_counts_on_device(decisions, options_.size());
  unread_.push_back(UnreadBatch{counts, cost.device_cp, cost.device_cp_blocks, decisions.front().options.size(0)});
  if (steering_.beta == 0.0) return {};
  const at::Tensor steered = steers_own_width() ? blocks_cp_on_device(decisions, counts, steering_options_)
                             : steering_.blocks_only ? cost.device_cp_blocks
                                                     : cost.device_cp;
  // The host's term multiplies by sign x beta as a float: the same here, so that both give the same bits.
  const at::Tensor scale = (cost_sign(steered) * steering_.beta).to(at::kFloat);
  return gating_cost(decisions, steering_options_) * scale;
}

void DynamicController::read_pending() {
  if (unread_.empty()) return;
  std::vector<at::Tensor> values;  // per batch: its counts, then its cp and cp_blocks
  for (const UnreadBatch& u : unread_) {
    values.push_back(u.counts.to(at::kDouble).reshape({-1}));
    values.push_back(u.cp.reshape({1}));
    values.push_back(u.cp_blocks.reshape({1}));
  }
  const at::Tensor host = at::cat(values).to(at::kCPU).contiguous();  // the one wait for the device
  const double* next = host.data_ptr<double>();
  for (const UnreadBatch& u : unread_) {
    std::vector<std::vector<int64_t>> counts(static_cast<size_t>(u.counts.size(0)));
    for (auto& row : counts)
      for (int64_t k = 0; k < u.counts.size(1); ++k) row.push_back(static_cast<int64_t>(*next++));
    const double cp = *next++, cp_blocks = *next++;
    eval_window_.add_counts(counts, u.samples, cp, cp_blocks);
    trace_window_.add_counts(counts, u.samples, cp, cp_blocks);
  }
  unread_.clear();
}

std::function<void()> DynamicController::take_captured_observation() {
  if (unread_.empty()) throw Error("DFQ: no step was observed on the device during the capture");
  const UnreadBatch captured = unread_.back();
  unread_.pop_back();
  return [this, captured] {
    unread_.push_back(UnreadBatch{captured.counts.clone(), captured.cp.clone(), captured.cp_blocks.clone(),
                                  captured.samples});
  };
}

void DynamicController::refuse_while_unread(const char* what) const {
  if (!unread_.empty())
    throw Error(std::string("DFQ: ") + what + " asked for while " + std::to_string(unread_.size()) +
                " batches' decisions are unread on the device (call read_pending() first)");
}

std::vector<std::string> DynamicController::metric_columns() const {
  return {"window_cp", "window_cp_blocks", "target_cp"};
}

// The evaluation window's cp and how often each block chose each option.
ControllerReport DynamicController::evaluation_report() {
  read_pending();
  const GateWindow w = take_eval_window();
  ControllerReport report;
  report.metrics["window_cp"] = w.cp();
  report.metrics["window_cp_blocks"] = w.cp_blocks();
  report.metrics["target_cp"] = target_cp();
  report.metrics["gate_selection"] = w.selection_json();
  std::vector<std::string> labels;
  for (size_t k = 0; k < options_.size(); ++k) labels.push_back(options_.label(k));
  report.metrics["gate_options"] = labels;
  report.log_lines.push_back(fmt::format("gates: cp {:.3f}% (blocks {:.3f}%) since the last evaluation, target "
                                         "{:.3f}% ({})",
                                         w.cp(), w.cp_blocks(), target_cp(),
                                         steering_.blocks_only ? "blocks" : "network"));
  return report;
}

// cp_trace.csv: the cp of the batches since the last trace point, for the cp-versus-iteration curve.
ControllerTrace DynamicController::trace() const { return {"cp_trace", {"cp", "cp_blocks", "target_cp", "stage"}}; }

nlohmann::json DynamicController::take_trace_record() {
  read_pending();
  const GateWindow w = take_trace_window();
  return {{"cp", w.cp()}, {"cp_blocks", w.cp_blocks()}, {"target_cp", target_cp()}, {"stage", stage()}};
}

nlohmann::json DynamicController::state() const {
  refuse_while_unread("the state");
  nlohmann::json s = schedule_.state(describe());
  s["eval_window"] = eval_window_.state();
  s["trace_window"] = trace_window_.state();
  return s;
}

void DynamicController::restore(const nlohmann::json& state) {
  // The schedule first: it refuses a checkpoint of another schedule before anything is changed.
  StagedSchedule schedule = schedule_;
  schedule.restore(state, describe());
  eval_window_.restore(state.at("eval_window"));
  trace_window_.restore(state.at("trace_window"));
  schedule_ = std::move(schedule);
  unread_.clear();
}

}  // namespace fractrain
