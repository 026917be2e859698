#include "fractrain/train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "fractrain/train/run_fraction.h"
#include "fractrain/util/error.h"

namespace fractrain {

void validate_lr_schedule(const ScheduleConfig& schedule) {
  if (!schedule.milestones.empty() && !schedule.milestone_fractions.empty())
    throw Error("schedule.milestones and schedule.milestone_fractions are both set: give the lr drops in epochs or "
                "as fractions of the run, not both (set the other to [])");
  if (!schedule.milestone_fractions.empty() && schedule.type != "multistep")
    throw Error("schedule.milestone_fractions is set but schedule.type = '" + schedule.type +
                "' has no milestones: set schedule.type = \"multistep\" or milestone_fractions = []");
}

double learning_rate(const ScheduleConfig& schedule, double base_lr, const ScheduleClock& clock) {
  double lr = base_lr;
  if (schedule.type == "multistep") {
    const int64_t epoch = clock.iteration / std::max<int64_t>(1, clock.iterations_per_epoch);
    for (int64_t milestone : schedule.milestones)
      if (epoch >= milestone) lr *= schedule.gamma;
    for (double fraction : schedule.milestone_fractions)
      if (clock.iteration >= step_at_fraction(fraction, clock.total_iterations)) lr *= schedule.gamma;
  } else if (schedule.type == "cosine") {
    const double progress = static_cast<double>(clock.iteration) / std::max<int64_t>(1, clock.total_iterations);
    lr = 0.5 * base_lr * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
  } else if (schedule.type == "inverse-sqrt") {
    // fairseq's inverse_sqrt: the peak at the end of the warm-up, then lr x sqrt(warmup / step).
    const double step = static_cast<double>(clock.iteration + 1);
    const double warmup = static_cast<double>(std::max<int64_t>(1, schedule.warmup_iterations));
    if (step > warmup) lr *= std::sqrt(warmup / step);
  } else if (schedule.type != "constant") {
    throw Error("schedule.type = '" + schedule.type +
                "' is not a schedule: use constant, multistep, cosine or inverse-sqrt");
  }
  if (clock.iteration < schedule.warmup_iterations)
    lr *= static_cast<double>(clock.iteration + 1) / static_cast<double>(schedule.warmup_iterations);
  return lr;
}

}  // namespace fractrain
