#pragma once
// A ResNet (CIFAR or ImageNet layout) with a DFQ gate per BasicBlock (DESIGN.md 4.5): the same network as
// ResNet (same parameters and names, plus the gate under "gate."), whose blocks run at the precision the gate
// picks for each sample. The stem and classifier run at the plan's precision (FP32 in DFQ and FracTrain runs).
#include "fractrain/models/gated_network.h"
#include "fractrain/models/resnet.h"
#include "fractrain/nn/decision_gate.h"

namespace fractrain {

class GatedResNet : public ResNet, public GatedNetwork {
 public:
  GatedResNet(const ResNetLayout& layout, const ModelInputSpec& input, OptionSet options, GateExecution execution);
  // With plan.gating false the gates do not run and every block runs at the plan's precision.
  at::Tensor forward(const at::Tensor& images, const PrecisionPlan& plan) override;

  const OptionSet& option_set() const override { return options_; }
  GateExecution execution() const override { return execution_; }
  const std::vector<BlockGating>& last_gating() const override { return gating_; }
  std::vector<std::string> gated_blocks() const override;

 private:
  OptionSet options_;
  GateExecution execution_;
  std::shared_ptr<DecisionGate> gate_;
  std::vector<BlockGating> gating_;
};

}  // namespace fractrain
