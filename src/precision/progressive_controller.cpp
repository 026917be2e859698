#include "fractrain/precision/progressive_controller.h"

#include "fractrain/precision/precision_mode.h"
#include "fractrain/util/error.h"

namespace fractrain {

ProgressiveController::ProgressiveController(std::vector<Precision> stages, std::vector<PrecisionPlan> plans,
                                             StagedSchedule schedule)
    : stages_(std::move(stages)), plans_(std::move(plans)), schedule_(std::move(schedule)) {}

std::vector<StageInfo> ProgressiveController::stage_infos(const std::vector<Precision>& stages) {
  std::vector<StageInfo> infos;
  for (const auto& p : stages) infos.push_back({p, to_string(p)});
  return infos;
}

namespace {
void check_stages(const std::vector<Precision>& stages, const std::vector<PrecisionPlan>& plans) {
  if (stages.size() < 2 || plans.size() != stages.size())
    throw Error("a progressive precision schedule needs at least 2 stages and one plan per stage (got " +
                std::to_string(stages.size()) + " stages, " + std::to_string(plans.size()) + " plans)");
}
}  // namespace

std::unique_ptr<ProgressiveController> ProgressiveController::manual(std::vector<Precision> stages,
                                                                     std::vector<PrecisionPlan> plans,
                                                                     std::vector<int64_t> switch_steps,
                                                                     int64_t steps_per_epoch) {
  check_stages(stages, plans);
  StagedSchedule schedule = StagedSchedule::at_steps(stage_infos(stages), std::move(switch_steps), steps_per_epoch);
  return std::unique_ptr<ProgressiveController>(
      new ProgressiveController(std::move(stages), std::move(plans), std::move(schedule)));
}

std::unique_ptr<ProgressiveController> ProgressiveController::automatic(std::vector<Precision> stages,
                                                                        std::vector<PrecisionPlan> plans,
                                                                        PlateauSettings settings) {
  check_stages(stages, plans);
  StagedSchedule schedule = StagedSchedule::by_indicator(stage_infos(stages), settings);
  return std::unique_ptr<ProgressiveController>(
      new ProgressiveController(std::move(stages), std::move(plans), std::move(schedule)));
}

const PrecisionPlan& ProgressiveController::plan_for_step(int64_t step) {
  schedule_.advance_to_step(step);
  PrecisionPlan& plan = plans_[stage()];
  plan.noise_step = static_cast<uint64_t>(step);
  return plan;
}

void ProgressiveController::observe_window_loss(double mean_loss, int64_t step, double epoch) {
  schedule_.observe_window_loss(mean_loss, step, epoch);
}

std::string ProgressiveController::describe() const {
  std::string fw, bw;
  for (size_t i = 0; i < stages_.size(); ++i) {
    fw += (i ? "," : "") + std::to_string(stages_[i].weight);
    bw += (i ? "," : "") + std::to_string(stages_[i].grad);
  }
  return to_string(schedule_.by_indicator() ? PrecisionMode::PfqAuto : PrecisionMode::PfqManual) + " fw" + fw + "/bw" +
         bw;
}

}  // namespace fractrain
