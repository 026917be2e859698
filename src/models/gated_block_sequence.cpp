#include "fractrain/models/gated_block_sequence.h"

#include <c10/util/Exception.h>

#include "fractrain/models/gated_block.h"
#include "fractrain/util/error.h"

namespace fractrain {

GatedBlockSequence::GatedBlockSequence(OptionSet options, GateExecution execution)
    : options_(std::move(options)), execution_(execution) {}

std::shared_ptr<DecisionGate> GatedBlockSequence::make_gate(std::vector<Block> blocks) {
  if (blocks.empty()) throw Error("a gated model needs at least one gateable block");
  blocks_ = std::move(blocks);
  std::vector<int64_t> channels;
  for (const auto& b : blocks_) channels.push_back(b.in_channels);
  gate_ = std::make_shared<DecisionGate>(channels, static_cast<int64_t>(options_.size()));
  return gate_;
}

std::vector<std::string> GatedBlockSequence::block_names() const {
  std::vector<std::string> names;
  for (const auto& b : blocks_) names.push_back(b.name);
  return names;
}

GatedBlockSequence::Output GatedBlockSequence::run_blocks(at::Tensor x, const PrecisionPlan& plan, bool training) {
  gate_->reset();
  std::vector<BlockDecision> decisions;
  const bool candidates = execution_ == GateExecution::Candidates && training;
  const bool masked = execution_ == GateExecution::Masked;
  if (masked && !tables_.on(x.device())) tables_ = OptionTables::build(options_, x.device());
  for (size_t i = 0; i < blocks_.size(); ++i) {
    GateableBlock& block = *blocks_[i].block;
    std::vector<bool> allowed(options_.size(), true);
    if (!block.can_skip() && options_.has_skip()) allowed[options_.skip_index()] = false;
    GateDecision decision = gate_->decide(i, x, allowed);
    const QuantizerSettings& settings = block.layers().front()->quantizer_settings();
    const GatedBlockRun run{options_, plan.noise_step, settings.snap_zero_point,
                            training ? settings.range_agreement : nullptr, masked ? &tables_ : nullptr};
    BlockDecision taken;
    taken.block = blocks_[i].name;
    taken.mask = decision.mask;
    taken.options = decision.indices;
    taken.macs_per_sample = block.macs_per_sample(x.size(2), x.size(3));
    taken.fixed_macs_per_sample = block.fixed_precision_macs_per_sample(x.size(2), x.size(3));
    taken.fixed_precision = block.fixed_precision();
    decisions.push_back(std::move(taken));
    try {
      x = candidates ? run_gated_block_candidates(block, x, decision, run)
          : masked   ? run_gated_block_masked(block, x, decision, run)
                     : run_gated_block_mixed(block, x, decision, run);
    } catch (const c10::Error& e) {
      // E.g. BatchNorm in training on a 1x1 map when one sample runs the block: name the block and the cause.
      throw Error("DFQ: gated block " + blocks_[i].name + " failed on a " + std::to_string(x.size(2)) + "x" +
                  std::to_string(x.size(3)) + " input (" + e.what_without_backtrace() +
                  "); BatchNorm needs more than one value per channel, so inputs this small can fail when a single "
                  "sample runs a block whose maps are 1x1: use larger images");
    }
  }
  return {x, std::move(decisions)};
}

}  // namespace fractrain
