#include "fractrain/precision/staged_schedule.h"

#include <algorithm>

#include "fractrain/util/error.h"

namespace fractrain {

StagedSchedule::StagedSchedule(std::vector<StageInfo> stages) : stages_(std::move(stages)) {
  if (stages_.empty()) throw Error("a precision schedule needs at least one stage");
}

StagedSchedule StagedSchedule::single(StageInfo stage) { return StagedSchedule({std::move(stage)}); }

StagedSchedule StagedSchedule::at_steps(std::vector<StageInfo> stages, std::vector<int64_t> switch_steps,
                                        int64_t steps_per_epoch) {
  StagedSchedule s(std::move(stages));
  if (switch_steps.size() + 1 != s.stages_.size())
    throw Error("a manual precision schedule of " + std::to_string(s.stages_.size()) + " stages needs " +
                std::to_string(s.stages_.size() - 1) + " switch points, got " + std::to_string(switch_steps.size()));
  for (size_t i = 1; i < switch_steps.size(); ++i)
    if (switch_steps[i] <= switch_steps[i - 1]) throw Error("manual precision switch steps must increase strictly");
  s.switch_steps_ = std::move(switch_steps);
  s.steps_per_epoch_ = std::max<int64_t>(1, steps_per_epoch);
  return s;
}

StagedSchedule StagedSchedule::by_indicator(std::vector<StageInfo> stages, PlateauSettings settings) {
  StagedSchedule s(std::move(stages));
  settings.turning_points = s.stage_count() - 1;
  s.indicator_enabled_ = true;
  s.indicator_ = PlateauIndicator(settings);
  return s;
}

void StagedSchedule::hold_last_stage_from(int64_t step, int64_t steps_per_epoch) {
  if (step < 0) throw Error("the step from which the last precision stage holds must be >= 0");
  last_stage_step_ = step;
  steps_per_epoch_ = std::max<int64_t>(1, steps_per_epoch);
}

void StagedSchedule::advance_to_step(int64_t step) {
  while (!switch_steps_.empty() && stage_ + 1 < stage_count() && step >= switch_steps_[stage_])
    enter_stage(stage_ + 1, switch_steps_[stage_], static_cast<double>(switch_steps_[stage_]) / steps_per_epoch_, {},
                0.0);
  if (last_stage_step_ >= 0 && step >= last_stage_step_ && stage_ + 1 < stage_count())
    enter_stage(stage_count() - 1, last_stage_step_, static_cast<double>(last_stage_step_) / steps_per_epoch_, {},
                0.0);
}

void StagedSchedule::observe_window_loss(double mean_loss, int64_t step, double epoch) {
  if (!indicator_enabled_) return;
  IndicatorWindow window;
  window.step = step;
  window.epoch = epoch;
  window.stage = stage_;
  window.mean_loss = mean_loss;
  window.eps = indicator_.eps();  // the threshold this window is tested against
  // After the last turning point (or a held last stage) the indicator is finished and tests nothing.
  if (stage_ + 1 < stage_count()) {
    window.turning_point = indicator_.observe(mean_loss);
    window.differences = indicator_.differences();
    if (window.turning_point) enter_stage(stage_ + 1, step, epoch, window.differences, window.eps);
  }
  window.scale = indicator_.scale();
  last_window_ = std::move(window);
}

void StagedSchedule::enter_stage(int stage, int64_t step, double epoch, std::vector<double> differences, double eps) {
  stage_ = stage;
  const StageInfo& entered = stages_[stage_];
  turning_points_.push_back(TurningPoint{stage_, step, epoch, std::move(differences), eps, entered.precision,
                                         entered.label});
}

nlohmann::json StagedSchedule::state(const std::string& name) const {
  nlohmann::json points = nlohmann::json::array();
  for (const auto& t : turning_points_) points.push_back(to_json(t));
  nlohmann::json s = {{"schedule", name}, {"stage", stage_}, {"turning_points", points}};
  if (indicator_enabled_) s["indicator"] = indicator_.state();
  return s;
}

void StagedSchedule::restore(const nlohmann::json& state, const std::string& name) {
  if (state.at("schedule").get<std::string>() != name)
    throw Error("the checkpoint's precision schedule is '" + state.at("schedule").get<std::string>() +
                "', this run's is '" + name + "'");
  const int stage = state.at("stage").get<int>();
  if (stage < 0 || stage >= stage_count())
    throw Error("the checkpoint's precision stage " + std::to_string(stage) + " is not in 0.." +
                std::to_string(stage_count() - 1));
  std::vector<TurningPoint> points;
  for (const auto& t : state.at("turning_points")) points.push_back(turning_point_from_json(t));
  if (indicator_enabled_) indicator_.restore(state.at("indicator"));
  stage_ = stage;
  turning_points_ = std::move(points);
}

}  // namespace fractrain
