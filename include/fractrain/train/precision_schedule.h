#pragma once
// Turning the precision section of a RunConfig into the run's PrecisionController (static, PFQ, DFQ, FracTrain).
#include <memory>
#include <vector>

#include "fractrain/models/quantized_model.h"
#include "fractrain/precision/precision_controller.h"
#include "fractrain/train/run_config.h"

namespace fractrain {

// The steps after which each manual stage after the first starts: the given epochs, iterations or fractions of
// `total_steps` (each at its nearest step), or equal parts of `total_steps` when none is given.
std::vector<int64_t> manual_switch_steps(const PrecisionConfig& precision, int64_t steps_per_epoch,
                                         int64_t total_steps);

// The loss indicator's window in steps (auto PFQ, FracTrain): pfq_window_fraction of `total_steps` (at least 1),
// else pfq_window_iterations, else one epoch.
int64_t indicator_window_steps(const PrecisionConfig& precision, int64_t steps_per_epoch, int64_t total_steps);

// What a user should know about the schedule of a run of `total_steps` steps (a manual stage that would start
// after the end), one sentence each.
std::vector<std::string> precision_schedule_notes(const PrecisionConfig& precision, int64_t steps_per_epoch,
                                                  int64_t total_steps);

// Validates the schedule (validate_precision_schedule) and builds the controller of precision.mode, every stage's
// plan following the run's layer policy (quantize_first_layer / quantize_classifier).
// In dfq/fractrain modes the model must be the gated form (build_model makes it). Every plan is checked against the
// model (QuantizedModel::check_plan).
std::unique_ptr<PrecisionController> make_precision_controller(const RunConfig& config, const QuantizedModel& model,
                                                               int64_t steps_per_epoch, int64_t total_steps);

}  // namespace fractrain
