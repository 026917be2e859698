#include "fractrain/precision/dynamic_controller.h"

#include <fmt/format.h>

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

DynamicController::DynamicController(OptionSet options, PrecisionPlan plan, std::vector<double> targets,
                                     CostSteering steering, std::vector<std::string> blocks)
    : options_(std::move(options)),
      plan_(std::move(plan)),
      targets_(std::move(targets)),
      steering_(steering),
      eval_window_(blocks, options_.size()),
      trace_window_(blocks, options_.size()) {
  if (targets_.empty()) throw Error("DFQ: no target cp");
  for (double t : targets_)
    if (!(t > 0 && t <= 100)) throw Error(fmt::format("DFQ: target cp {}% is not in (0, 100]", t));
  if (steering_.beta < 0 || steering_.dead_band < 0) throw Error("DFQ: beta and dead band must be >= 0");
  plan_.gating = true;
}

std::unique_ptr<DynamicController> DynamicController::dfq(OptionSet options, PrecisionPlan plan, double target_cp,
                                                          CostSteering steering, std::vector<std::string> blocks) {
  return std::unique_ptr<DynamicController>(
      new DynamicController(std::move(options), std::move(plan), {target_cp}, steering, std::move(blocks)));
}

std::unique_ptr<DynamicController> DynamicController::fractrain(OptionSet options, PrecisionPlan plan,
                                                                std::vector<double> targets, CostSteering steering,
                                                                PlateauSettings settings,
                                                                std::vector<std::string> blocks) {
  std::unique_ptr<DynamicController> c(
      new DynamicController(std::move(options), std::move(plan), std::move(targets), steering, std::move(blocks)));
  c->progressive_ = true;
  settings.turning_points = c->stage_count() - 1;
  c->indicator_ = PlateauIndicator(settings);
  return c;
}

const PrecisionPlan& DynamicController::plan_for_step(int64_t step) {
  plan_.noise_step = static_cast<uint64_t>(step);
  return plan_;
}

void DynamicController::observe_window_loss(double mean_loss, int64_t step, double epoch) {
  if (!progressive_ || stage_ + 1 >= stage_count()) return;
  const double eps = indicator_.eps();
  if (!indicator_.observe(mean_loss)) return;
  ++stage_;
  turning_points_.push_back(
      TurningPoint{stage_, step, epoch, indicator_.differences(), eps, precision(), stage_label(stage_)});
}

std::string DynamicController::stage_label(int stage) const {
  return fmt::format("cp {:.2f}%", targets_.at(static_cast<size_t>(stage)));
}

std::string DynamicController::describe() const {
  std::string targets;
  for (size_t i = 0; i < targets_.size(); ++i) targets += fmt::format("{}{:.3g}", i ? "," : "", targets_[i]);
  return fmt::format("{} {} target cp {}%{}", progressive_ ? "fractrain" : "dfq", options_.describe(), targets,
                     steering_.blocks_only ? " (blocks)" : "");
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

nlohmann::json DynamicController::state() const {
  nlohmann::json s = schedule_state(describe(), stage_, turning_points_);
  s["eval_window"] = eval_window_.state();
  s["trace_window"] = trace_window_.state();
  if (progressive_) s["indicator"] = indicator_.state();
  return s;
}

void DynamicController::restore(const nlohmann::json& state) {
  ScheduleState s = restore_schedule_state(state, describe(), stage_count());
  if (progressive_) indicator_.restore(state.at("indicator"));
  eval_window_.restore(state.at("eval_window"));
  trace_window_.restore(state.at("trace_window"));
  stage_ = s.stage;
  turning_points_ = std::move(s.turning_points);
}

}  // namespace fractrain
