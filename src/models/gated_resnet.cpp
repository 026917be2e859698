#include "fractrain/models/gated_resnet.h"

#include <torch/torch.h>

#include "fractrain/models/gated_block.h"
#include "fractrain/util/error.h"

namespace fractrain {

GateExecution parse_gate_execution(const std::string& text) {
  if (text == "mixed") return GateExecution::Mixed;
  if (text == "candidates") return GateExecution::Candidates;
  throw Error("DFQ execution '" + text + "' is unknown: use mixed (one pass, per-sample precision) or candidates "
              "(every option on the whole batch, as the released code)");
}

const char* to_string(GateExecution execution) {
  return execution == GateExecution::Mixed ? "mixed" : "candidates";
}

GatedResNet::GatedResNet(const ResNetLayout& layout, const ModelInputSpec& input, OptionSet options,
                         GateExecution execution)
    : ResNet(layout, input), options_(std::move(options)), execution_(execution) {
  std::vector<int64_t> channels;
  for (const auto& b : blocks()) channels.push_back(b.in_channels);
  gate_ = register_module("gate", std::make_shared<DecisionGate>(channels, static_cast<int64_t>(options_.size())));
}

std::vector<std::string> GatedResNet::gated_blocks() const {
  std::vector<std::string> names;
  for (const auto& b : blocks()) names.push_back(b.name);
  return names;
}

at::Tensor GatedResNet::forward(const at::Tensor& images, const PrecisionPlan& plan) {
  if (!plan.gating) return ResNet::forward(images, plan);
  at::Tensor x = stem_forward(images, plan);
  gate_->reset();
  gating_.clear();
  const bool candidates = execution_ == GateExecution::Candidates && is_training();
  for (size_t i = 0; i < blocks().size(); ++i) {
    const auto& b = blocks()[i];
    std::vector<bool> allowed(options_.size(), true);
    if (b.block->has_projection() && options_.has_skip()) allowed[options_.skip_index()] = false;
    GateDecision decision = gate_->decide(i, x, allowed);
    const GatedBlockRun run{options_, plan.noise_step,
                            b.block->layers().front()->quantizer_settings().snap_zero_point};
    gating_.push_back({b.name, decision.mask, decision.decisions, b.block->macs_per_sample(x.size(2), x.size(3))});
    x = candidates ? run_gated_block_candidates(*b.block, x, decision, run)
                   : run_gated_block_mixed(*b.block, x, decision, run);
  }
  return head_forward(x, plan);
}

}  // namespace fractrain
