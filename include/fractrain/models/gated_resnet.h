#pragma once
// A ResNet (CIFAR or ImageNet layout) with a DFQ gate per BasicBlock (DESIGN.md 4.5): the same network as
// ResNet (same parameters and names, plus the gate under "gate."), whose blocks run at the precision the gate
// picks for each sample. The stem and classifier run at the plan's precision (FP32 in DFQ and FracTrain runs).
// Blocks with a projection shortcut are never skipped.
#include "fractrain/models/gated_block_sequence.h"
#include "fractrain/models/resnet.h"

namespace fractrain {

class GatedResNet : public ResNet, public GatedBlockSequence {
 public:
  GatedResNet(const ResNetLayout& layout, const ModelInputSpec& input, OptionSet options, GateExecution execution);
  // With plan.gating false the gates do not run and every block runs at the plan's precision.
  at::Tensor forward(const at::Tensor& images, const PrecisionPlan& plan) override;
};

}  // namespace fractrain
