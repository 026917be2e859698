#include "fractrain/cost/static_cost.h"

namespace fractrain {

CostPeriod static_step_cost(const ModelProfile& profile, const PrecisionPlan& plan, int64_t batch,
                            const HardwareModel& hardware) {
  CostPeriod step(profile.layers().size());
  step.samples = batch;
  for (size_t i = 0; i < profile.layers().size(); ++i) {
    const LayerProfile& layer = profile.layers()[i];
    step.layers[i] = layer_cost(layer, layer.macs_per_sample, batch, plan.for_layer(layer.name), hardware);
  }
  return step;
}

}  // namespace fractrain
