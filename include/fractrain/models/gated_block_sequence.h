#pragma once
// The DFQ machinery every gated model shares (DESIGN.md 4.5): its option set and execution mode, one
// DecisionGate step per gateable block (the gate's input is the block's input, i.e. the previous block's output
// or the stem's), and each block run under the gate's per-sample decisions, which it returns with the output.
// GatedModel (gated_model.h) joins it to a plain network.
#include <memory>
#include <string>
#include <vector>

#include "fractrain/models/gate_execution.h"
#include "fractrain/models/gateable_block.h"
#include "fractrain/models/gated_block.h"
#include "fractrain/nn/decision_gate.h"
#include "fractrain/precision/block_decision.h"

namespace fractrain {

class GatedBlockSequence {
 public:
  const OptionSet& option_set() const { return options_; }
  std::vector<std::string> block_names() const;

 protected:
  struct Block {
    std::string name;  // module path, e.g. "stage2.0", "blocks.3"
    std::shared_ptr<GateableBlock> block;
    int64_t in_channels;
  };
  struct Output {
    at::Tensor x;
    std::vector<BlockDecision> decisions;  // one per block, in execution order
  };
  GatedBlockSequence(OptionSet options, GateExecution execution);
  // The blocks in execution order; returns the gate (one embedding per block) for the model to register.
  std::shared_ptr<DecisionGate> make_gate(std::vector<Block> blocks);
  // x (the stem's output) through every block at the gates' decisions; `training` selects candidates
  // execution when configured (evaluation runs mixed then; masked runs masked in both).
  Output run_blocks(at::Tensor x, const PrecisionPlan& plan, bool training);

 private:
  OptionSet options_;
  GateExecution execution_;
  std::vector<Block> blocks_;
  std::shared_ptr<DecisionGate> gate_;
  OptionTables tables_;  // masked execution: built on the first input's device, again if the model moves
};

}  // namespace fractrain
