#include "fractrain/precision/static_plan.h"

namespace fractrain {

PrecisionPlan make_static_plan(const QuantizedModel& model, const Precision& precision,
                               const QuantizationPolicy& policy) {
  PrecisionPlan plan = PrecisionPlan::uniform(precision);
  plan.gating = false;  // a gated model runs every block at this precision
  model.fix_layer_precisions(plan, precision);
  // A model without a stem (a language model reads embeddings) has no first layer to keep FP32.
  if (!policy.quantize_first_layer && !model.first_layer_name().empty())
    plan.set_layer(model.first_layer_name(), LayerPrecision::uniform(Precision::full()));
  if (!policy.quantize_classifier) plan.set_layer(model.classifier_name(), LayerPrecision::uniform(Precision::full()));
  return plan;
}

}  // namespace fractrain
