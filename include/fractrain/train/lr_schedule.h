#pragma once
// Learning rate as a pure function of the iteration, so a resumed run needs no schedule state.
#include <cstdint>

#include "fractrain/train/run_config.h"

namespace fractrain {

struct ScheduleClock {
  int64_t iteration = 0;             // 0-based index of the step about to run
  int64_t iterations_per_epoch = 1;  // for epoch-based milestones
  int64_t total_iterations = 1;      // for cosine decay
};

// Throws fractrain::Error naming the keys when schedule keys that must agree do not: milestones in epochs and as
// fractions of the run at once, or fractions for a schedule type without milestones. Run with
// validate_precision_schedule (see there why not in validate()).
void validate_lr_schedule(const ScheduleConfig& schedule);

// constant: lr; multistep: lr * gamma^(number of milestones <= current epoch, and of milestone fractions whose
// step, the one nearest to that fraction of total_iterations, has been reached); cosine: half-cosine decay from
// lr to 0 over the run; inverse-sqrt: lr x sqrt(warmup_iterations / (iteration + 1)) once past the warm-up
// (fairseq's Transformer schedule; with no warm-up, lr / sqrt(iteration + 1)). A linear warm-up over the first `warmup_iterations` multiplies any of them.
double learning_rate(const ScheduleConfig& schedule, double base_lr, const ScheduleClock& clock);

}  // namespace fractrain
