#pragma once
// Which config changes a run may take when it continues from a checkpoint: how long or where it runs, not
// what it computes. Shared by `fractrain train --resume` and `fractrain sweep` (which resumes and skips runs).
#include <string>
#include <vector>

#include "fractrain/train/run_config.h"

namespace fractrain {

// train.epochs, train.iterations, train.threads, train.log_every, train.device, output.dir, ...,
// precision.execution (its effective snap_zero_point and error_weight_ranges are compared instead).
const std::vector<std::string>& keys_resume_may_change();

// One line per key outside keys_resume_may_change() whose value differs: "  key: before X, now Y". Keys that
// cannot change what the run computes do not count: the dfq section of a static or PFQ run, and dfq.options
// "auto" against the model's preset it stands for.
std::vector<std::string> compute_differences(const RunConfig& before, const RunConfig& now);

// Throws fractrain::Error listing compute_differences when there are any.
void check_resume_compatible(const RunConfig& saved, const RunConfig& requested, const std::string& checkpoint);

}  // namespace fractrain
