#pragma once
// Progressive Fractional Quantization (DESIGN.md 4.4): a schedule of stages (FW_i, BW_i), entered in order.
// Manual PFQ enters stage i once a fixed number of steps is complete; auto PFQ enters the next stage when the
// loss-plateau indicator finds a turning point at the end of a window.
#include <memory>

#include "fractrain/precision/plateau_indicator.h"
#include "fractrain/precision/precision_controller.h"

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
  const PrecisionPlan& current_plan() const override { return plans_[stage_]; }
  void observe_window_loss(double mean_loss, int64_t step, double epoch) override;
  int stage() const override { return stage_; }
  int stage_count() const override { return static_cast<int>(stages_.size()); }
  Precision precision() const override { return stages_[stage_]; }
  Precision stage_precision(int stage) const override { return stages_.at(stage); }
  std::string describe() const override;
  const std::vector<TurningPoint>& turning_points() const override { return turning_points_; }
  nlohmann::json state() const override;
  void restore(const nlohmann::json& state) override;

  const PlateauIndicator* indicator() const { return automatic_ ? &indicator_ : nullptr; }

 private:
  ProgressiveController(std::vector<Precision> stages, std::vector<PrecisionPlan> plans);
  void enter_next_stage(int64_t step, double epoch, std::vector<double> differences, double eps);

  std::vector<Precision> stages_;
  std::vector<PrecisionPlan> plans_;
  bool automatic_ = false;
  std::vector<int64_t> switch_steps_;  // manual
  int64_t steps_per_epoch_ = 1;        // manual: turning points report their epoch
  PlateauIndicator indicator_;         // automatic
  int stage_ = 0;
  std::vector<TurningPoint> turning_points_;
};

}  // namespace fractrain
