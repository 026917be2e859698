#pragma once
// The cost meter of a run: every layer the model executes is counted, next to FP32 and FW-8/BW-8 runs of the same
// samples with the same layer policy, on the accelerator model of cost.hardware.
#include <memory>
#include <string>
#include <vector>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/train/run_config.h"

namespace fractrain {

// Attached to `model` as its cost observer.
std::unique_ptr<CostMeter> make_run_cost_meter(const RunConfig& config, QuantizedModel& model,
                                               const ModelInputSpec& input);

// The cost columns of metrics.csv for such a meter.
std::vector<std::string> run_cost_metric_columns();

}  // namespace fractrain
