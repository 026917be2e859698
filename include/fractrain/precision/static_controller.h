#pragma once
// Static training (FP32 or FW-n/BW-m for the whole run): one plan, one stage, nothing to observe.
#include "fractrain/precision/precision_controller.h"

namespace fractrain {

class StaticController : public PrecisionController {
 public:
  StaticController(const Precision& precision, PrecisionPlan plan);

  const PrecisionPlan& plan_for_step(int64_t step) override;
  const PrecisionPlan& current_plan() const override { return plan_; }
  void observe_window_loss(double, int64_t, double) override {}
  int stage() const override { return 0; }
  int stage_count() const override { return 1; }
  Precision precision() const override { return precision_; }
  Precision stage_precision(int) const override { return precision_; }
  std::string describe() const override { return to_string(precision_); }
  const std::vector<TurningPoint>& turning_points() const override { return none_; }
  nlohmann::json state() const override { return nlohmann::json::object(); }
  void restore(const nlohmann::json&) override {}

 private:
  Precision precision_;
  PrecisionPlan plan_;
  std::vector<TurningPoint> none_;
};

}  // namespace fractrain
