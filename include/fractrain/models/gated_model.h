#pragma once
// The DFQ-gated form of a network (DESIGN.md 4.5): the same network (same parameters and names, plus the gate
// under "gate."), whose gateable blocks run at the precision the gate picks for each sample. The stem and the
// head run at the plan's precision (FP32 in DFQ and FracTrain runs). A network can be gated when it offers
// blocks() (name, GateableBlock, input channels), stem_forward and head_forward: ResNet (BasicBlocks; blocks with
// a projection shortcut are never skipped) and MobileNetV2 (inverted residuals; only identity blocks skip; the
// depthwise convs keep their fixed precision).
#include "fractrain/models/gated_block_sequence.h"
#include "fractrain/models/mobilenet_v2.h"
#include "fractrain/models/resnet.h"

namespace fractrain {

template <class Network>
class GatedModel : public Network, public GatedBlockSequence {
 public:
  template <class... NetworkArgs>
  GatedModel(OptionSet options, GateExecution execution, NetworkArgs&&... network_args)
      : Network(std::forward<NetworkArgs>(network_args)...), GatedBlockSequence(std::move(options), execution) {
    std::vector<Block> gated;
    for (const auto& b : Network::blocks()) gated.push_back({b.name, b.block, b.in_channels});
    this->register_module("gate", make_gate(std::move(gated)));
  }

  at::Tensor forward(const at::Tensor& images, const PrecisionPlan& plan) override {
    return forward_with_decisions(images, plan).output;
  }
  std::vector<std::string> gated_blocks() const override { return block_names(); }

 protected:
  // With plan.gating false the gates do not run and every block runs at the plan's precision.
  ForwardResult forward_with_decisions(const at::Tensor& images, const PrecisionPlan& plan) override {
    if (!plan.gating) return {Network::forward(images, plan), {}};
    Output blocks = run_blocks(Network::stem_forward(images, plan), plan, this->is_training());
    return {Network::head_forward(blocks.x, plan), std::move(blocks.decisions)};
  }
};

using GatedResNet = GatedModel<ResNet>;
using GatedMobileNetV2 = GatedModel<MobileNetV2>;

}  // namespace fractrain
