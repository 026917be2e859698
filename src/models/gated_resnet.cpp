#include "fractrain/models/gated_resnet.h"

namespace fractrain {

GatedResNet::GatedResNet(const ResNetLayout& layout, const ModelInputSpec& input, OptionSet options,
                         GateExecution execution)
    : ResNet(layout, input), GatedBlockSequence(std::move(options), execution) {
  std::vector<Block> gated;
  for (const auto& b : blocks()) gated.push_back({b.name, b.block, b.in_channels});
  register_module("gate", make_gate(std::move(gated)));
}

at::Tensor GatedResNet::forward(const at::Tensor& images, const PrecisionPlan& plan) {
  if (!plan.gating) return ResNet::forward(images, plan);
  return head_forward(run_blocks(stem_forward(images, plan), plan, is_training()), plan);
}

}  // namespace fractrain
