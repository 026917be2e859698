#include "fractrain/models/gateable_block.h"

#include <ATen/ATen.h>

namespace fractrain {

LayerPrecision GateableBlock::layer_precision(const QuantizedLayer& layer, const LayerPrecision& option) {
  if (!layer.fixed_precision()) return option;
  const Precision& fixed = *layer.fixed_precision();
  if (!option.on_device()) return LayerPrecision::uniform(fixed);
  const at::Tensor& runs = option.running_samples();
  const at::Tensor ran = runs.to(at::kInt);
  return LayerPrecision::per_sample_on_device(fixed.weight, {ran * fixed.act, ran * fixed.grad, runs});
}

}  // namespace fractrain
