#pragma once
// Points of a run stated as fractions of it (schedule.milestone_fractions, precision.pfq_switch_fractions,
// precision.pfq_window_fraction, dfq.last_stage_from): the paper's schedule shape (lr drops at 80 and 120 of 160
// epochs, the loss indicator checked once per epoch) carried over to a run of any length.
#include <cmath>
#include <cstdint>

namespace fractrain {

// The step nearest to `fraction` of a run of `total_steps` steps (0.5 of 7504 steps: step 3752).
inline int64_t step_at_fraction(double fraction, int64_t total_steps) {
  return static_cast<int64_t>(std::llround(fraction * static_cast<double>(total_steps)));
}

}  // namespace fractrain
