#include "fractrain/models/gated_mobilenet_v2.h"

namespace fractrain {

GatedMobileNetV2::GatedMobileNetV2(const ModelInputSpec& input, OptionSet options, GateExecution execution)
    : MobileNetV2(input), GatedBlockSequence(std::move(options), execution) {
  std::vector<Block> gated;
  for (const auto& b : blocks()) gated.push_back({b.name, b.block, b.in_channels});
  register_module("gate", make_gate(std::move(gated)));
}

at::Tensor GatedMobileNetV2::forward(const at::Tensor& images, const PrecisionPlan& plan) {
  if (!plan.gating) return MobileNetV2::forward(images, plan);
  return head_forward(run_blocks(stem_forward(images, plan), plan, is_training()), plan);
}

}  // namespace fractrain
