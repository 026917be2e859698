#include "fractrain/precision/static_plan.h"

namespace fractrain {

PrecisionPlan make_static_plan(const QuantizedModel& model, const Precision& precision,
                               const QuantizationPolicy& policy) {
  PrecisionPlan plan = PrecisionPlan::uniform(precision);
  plan.gating = false;  // a gated model runs every block at this precision
  // Layers with a fixed precision (QuantizedLayer::fix_precision) keep it in every quantized run.
  if (!precision.is_full())
    for (const auto& layer : model.quantized_layers())
      if (layer->fixed_precision()) plan.set_layer(layer->layer_name(), LayerPrecision::uniform(*layer->fixed_precision()));
  // A model without a stem (a language model reads embeddings) has no first layer to keep FP32.
  if (!policy.quantize_first_layer && !model.first_layer_name().empty())
    plan.set_layer(model.first_layer_name(), LayerPrecision::uniform(Precision::full()));
  if (!policy.quantize_classifier) plan.set_layer(model.classifier_name(), LayerPrecision::uniform(Precision::full()));
  return plan;
}

}  // namespace fractrain
