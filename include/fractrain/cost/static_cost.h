#pragma once
// The cost of a step whose precisions are known in advance: every layer of the model executed on the whole
// batch at the precision a plan gives it. Static runs cost exactly this per step; it is also what an FP32 or
// FW-8/BW-8 run of the same length would cost, the references every run is compared with.
#include "fractrain/cost/cost_totals.h"
#include "fractrain/precision/layer_precision.h"

namespace fractrain {

CostPeriod static_step_cost(const ModelProfile& profile, const PrecisionPlan& plan, int64_t batch,
                            const HardwareModel& hardware);

}  // namespace fractrain
