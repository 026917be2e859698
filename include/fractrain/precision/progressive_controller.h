#pragma once
// Progressive Fractional Quantization (DESIGN.md 4.4): a schedule of stages (FW_i, BW_i), entered in order.
// Manual PFQ enters stage i once a fixed number of steps is complete; auto PFQ enters the next stage when the
// loss-plateau indicator finds a turning point at the end of a window (both: StagedSchedule).
#include <memory>

#include "fractrain/precision/precision_controller.h"
#include "fractrain/precision/staged_schedule.h"

namespace fractrain {

class ProgressiveController : public PrecisionController {
 public:
  // `plans[i]` is what stage `stages[i]` runs (the layer policy applied). Stage i >= 1 starts once
  // switch_steps[i - 1] steps are complete (strictly increasing, one per turning point).
  static std::unique_ptr<ProgressiveController> manual(std::vector<Precision> stages, std::vector<PrecisionPlan> plans,
                                                       std::vector<int64_t> switch_steps, int64_t steps_per_epoch);
  // Turning points come from a PlateauIndicator with `settings` (its turning_points is set to stages - 1).
  static std::unique_ptr<ProgressiveController> automatic(std::vector<Precision> stages,
                                                          std::vector<PrecisionPlan> plans, PlateauSettings settings);

  const PrecisionPlan& plan_for_step(int64_t step) override;
  const PrecisionPlan& current_plan() const override { return plans_[stage()]; }
  void observe_window_loss(double mean_loss, int64_t step, double epoch) override;
  int stage() const override { return schedule_.stage(); }
  int stage_count() const override { return schedule_.stage_count(); }
  Precision precision() const override { return stages_[stage()]; }
  Precision stage_precision(int stage) const override { return stages_.at(stage); }
  std::string describe() const override;
  const std::vector<TurningPoint>& turning_points() const override { return schedule_.turning_points(); }
  bool has_indicator() const override { return schedule_.by_indicator(); }
  std::optional<IndicatorWindow> take_indicator_window() override { return schedule_.take_last_window(); }
  nlohmann::json state() const override { return schedule_.state(describe()); }
  void restore(const nlohmann::json& state) override { schedule_.restore(state, describe()); }

 private:
  ProgressiveController(std::vector<Precision> stages, std::vector<PrecisionPlan> plans, StagedSchedule schedule);
  static std::vector<StageInfo> stage_infos(const std::vector<Precision>& stages);

  std::vector<Precision> stages_;
  std::vector<PrecisionPlan> plans_;
  StagedSchedule schedule_;
};

}  // namespace fractrain
