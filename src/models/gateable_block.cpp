#include "fractrain/models/gateable_block.h"

#include <ATen/ATen.h>

#include "fractrain/util/error.h"

namespace fractrain {

LayerPrecision GateableBlock::layer_precision(const QuantizedLayer& layer, const LayerPrecision& option) {
  if (!layer.fixed_precision()) return option;
  const Precision& fixed = *layer.fixed_precision();
  if (!option.on_device()) return LayerPrecision::uniform(fixed);
  const at::Tensor& runs = option.running_samples();
  const at::Tensor ran = runs.to(at::kInt);
  return LayerPrecision::per_sample_on_device(fixed.weight, {ran * fixed.act, ran * fixed.grad, runs});
}

at::Tensor GateableBlock::residual_before_norm(const at::Tensor&, const LayerPrecision&, uint64_t,
                                               const InputHook&) {
  throw Error("GateableBlock: this block does not fuse its combination (fuses_combination() is false)");
}

at::Tensor GateableBlock::fused_combine(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  throw Error("GateableBlock: this block does not fuse its combination (fuses_combination() is false)");
}

}  // namespace fractrain
