#pragma once
// The DFQ machinery every gated model shares (DESIGN.md 4.5): its option set and execution mode, one
// DecisionGate step per gateable block (the gate's input is the block's input, i.e. the previous block's output
// or the stem's), each block run under the gate's per-sample decisions, and the decisions of the last forward
// pass. A gated model (GatedResNet, GatedMobileNetV2) derives from its plain network and from this, lists its
// blocks once, registers the gate under "gate." and calls run_blocks between its stem and its head.
#include <memory>
#include <string>
#include <vector>

#include "fractrain/models/gateable_block.h"
#include "fractrain/models/gated_network.h"
#include "fractrain/nn/decision_gate.h"

namespace fractrain {

class GatedBlockSequence : public GatedNetwork {
 public:
  const OptionSet& option_set() const override { return options_; }
  GateExecution execution() const override { return execution_; }
  const std::vector<BlockGating>& last_gating() const override { return gating_; }
  std::vector<std::string> gated_blocks() const override;

 protected:
  struct Block {
    std::string name;  // module path, e.g. "stage2.0", "blocks.3"
    std::shared_ptr<GateableBlock> block;
    int64_t in_channels;
  };
  GatedBlockSequence(OptionSet options, GateExecution execution);
  // The blocks in execution order; returns the gate (one embedding per block) for the model to register.
  std::shared_ptr<DecisionGate> make_gate(std::vector<Block> blocks);
  // x (the stem's output) through every block at the gates' decisions; `training` selects candidates
  // execution when configured (evaluation always runs mixed).
  at::Tensor run_blocks(at::Tensor x, const PrecisionPlan& plan, bool training);

 private:
  OptionSet options_;
  GateExecution execution_;
  std::vector<Block> blocks_;
  std::shared_ptr<DecisionGate> gate_;
  std::vector<BlockGating> gating_;
};

}  // namespace fractrain
