#pragma once
// The plan of static training (FP32 or FW-n/BW-m for the whole run), with the layer policy of DESIGN.md 4.2.
#include "fractrain/models/quantized_model.h"
#include "fractrain/precision/layer_precision.h"

namespace fractrain {

struct QuantizationPolicy {
  bool quantize_first_layer = true;  // the stem conv (quantized in static and PFQ runs)
  bool quantize_classifier = false;  // the final linear layer (FP32 in the paper)
};

// Every quantized layer at `precision`, except the stem / classifier when the policy keeps them FP32.
PrecisionPlan make_static_plan(const QuantizedModel& model, const Precision& precision,
                               const QuantizationPolicy& policy);

}  // namespace fractrain
