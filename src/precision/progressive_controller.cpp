#include "fractrain/precision/progressive_controller.h"

#include <algorithm>

#include "fractrain/util/error.h"

namespace fractrain {

ProgressiveController::ProgressiveController(std::vector<Precision> stages, std::vector<PrecisionPlan> plans)
    : stages_(std::move(stages)), plans_(std::move(plans)) {
  if (stages_.size() < 2 || plans_.size() != stages_.size())
    throw Error("a progressive precision schedule needs at least 2 stages and one plan per stage (got " +
                std::to_string(stages_.size()) + " stages, " + std::to_string(plans_.size()) + " plans)");
}

std::unique_ptr<ProgressiveController> ProgressiveController::manual(std::vector<Precision> stages,
                                                                     std::vector<PrecisionPlan> plans,
                                                                     std::vector<int64_t> switch_steps,
                                                                     int64_t steps_per_epoch) {
  std::unique_ptr<ProgressiveController> c(new ProgressiveController(std::move(stages), std::move(plans)));
  if (switch_steps.size() + 1 != c->stages_.size())
    throw Error("a manual precision schedule of " + std::to_string(c->stages_.size()) + " stages needs " +
                std::to_string(c->stages_.size() - 1) + " switch points, got " + std::to_string(switch_steps.size()));
  for (size_t i = 1; i < switch_steps.size(); ++i)
    if (switch_steps[i] <= switch_steps[i - 1]) throw Error("manual precision switch steps must increase strictly");
  c->switch_steps_ = std::move(switch_steps);
  c->steps_per_epoch_ = std::max<int64_t>(1, steps_per_epoch);
  return c;
}

std::unique_ptr<ProgressiveController> ProgressiveController::automatic(std::vector<Precision> stages,
                                                                        std::vector<PrecisionPlan> plans,
                                                                        PlateauSettings settings) {
  std::unique_ptr<ProgressiveController> c(new ProgressiveController(std::move(stages), std::move(plans)));
  settings.turning_points = c->stage_count() - 1;
  c->automatic_ = true;
  c->indicator_ = PlateauIndicator(settings);
  return c;
}

const PrecisionPlan& ProgressiveController::plan_for_step(int64_t step) {
  // A loop, not an if: a resumed or short run may cross several switch points at once.
  while (!automatic_ && stage_ + 1 < stage_count() && step >= switch_steps_[stage_])
    enter_next_stage(switch_steps_[stage_], static_cast<double>(switch_steps_[stage_]) / steps_per_epoch_, {}, 0.0);
  plans_[stage_].noise_step = static_cast<uint64_t>(step);
  return plans_[stage_];
}

void ProgressiveController::observe_window_loss(double mean_loss, int64_t step, double epoch) {
  if (!automatic_) return;
  const double eps = indicator_.eps();  // the threshold this window is tested against
  if (indicator_.observe(mean_loss)) enter_next_stage(step, epoch, indicator_.differences(), eps);
}

void ProgressiveController::enter_next_stage(int64_t step, double epoch, std::vector<double> differences, double eps) {
  ++stage_;
  turning_points_.push_back(
      TurningPoint{stage_, step, epoch, std::move(differences), eps, stages_[stage_], stage_label(stage_)});
}

std::string ProgressiveController::describe() const {
  std::string fw, bw;
  for (size_t i = 0; i < stages_.size(); ++i) {
    fw += (i ? "," : "") + std::to_string(stages_[i].weight);
    bw += (i ? "," : "") + std::to_string(stages_[i].grad);
  }
  return std::string(automatic_ ? "pfq-auto" : "pfq-manual") + " fw" + fw + "/bw" + bw;
}

nlohmann::json ProgressiveController::state() const {
  nlohmann::json s = schedule_state(describe(), stage_, turning_points_);
  if (automatic_) s["indicator"] = indicator_.state();
  return s;
}

void ProgressiveController::restore(const nlohmann::json& state) {
  ScheduleState s = restore_schedule_state(state, describe(), stage_count());
  if (automatic_) indicator_.restore(state.at("indicator"));
  stage_ = s.stage;
  turning_points_ = std::move(s.turning_points);
}

}  // namespace fractrain
