#include "fractrain/precision/static_controller.h"

namespace fractrain {

StaticController::StaticController(const Precision& precision, PrecisionPlan plan)
    : precision_(precision), plan_(std::move(plan)) {}

const PrecisionPlan& StaticController::plan_for_step(int64_t step) {
  plan_.noise_step = static_cast<uint64_t>(step);  // each step draws fresh rounding noise
  return plan_;
}

}  // namespace fractrain
