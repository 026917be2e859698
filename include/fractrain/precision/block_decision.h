#pragma once
// What a DFQ gate decided for one gated block in one forward pass, as the forward pass returns it to the trainer
// and the trainer hands it to the controller (DESIGN.md 4.5, 6): per sample the chosen option (a tensor on the
// model's device) and the straight-through mask that carries the cost term's gradient to the gate, with what
// the block costs, so that the controller can weigh the options without knowing the model.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fractrain/precision/option_set.h"

namespace fractrain {

struct BlockDecision {
  std::string block;               // module path, e.g. "stage2.0"
  at::Tensor mask;                 // [N, K] straight-through one-hot (differentiable in training)
  at::Tensor options;              // [N] int64: the option each sample chose, on the model's device
  int64_t macs_per_sample = 0;     // forward MACs of the block's quantized layers at this input size
  // Of those, the MACs of the layers that run at a fixed precision whatever the option (MobileNetV2's depthwise
  // convs at FW-8/BW-16), and that precision.
  int64_t fixed_macs_per_sample = 0;
  Precision fixed_precision;

  // The training cost (fw + eb + gc) of one sample choosing option k, relative to the block in FP32: 0 for
  // skip; otherwise the option's bit products on the option-following MACs plus the fixed precision's on the
  // fixed MACs, over 3 x 32^2 x macs_per_sample.
  double relative_cost(const OptionSet& options, size_t k) const;
};

// The options of every block, copied to the host: [block][sample].
std::vector<std::vector<int64_t>> options_on_host(const std::vector<BlockDecision>& decisions);

// The cp of the gated blocks (percent of their FP32 training cost, as CostTotals::cp_blocks counts it) that the
// choices `chosen` ([block][sample], e.g. options_on_host) cost with `options`' widths; every sample counts in
// the FP32 reference, a skipped one at no cost. The decisions give each block's MACs.
double blocks_cp(const std::vector<BlockDecision>& decisions, const std::vector<std::vector<int64_t>>& chosen,
                 const OptionSet& options);

// On the decisions' device, nothing read back (deferred host reads): how many samples of each block chose each of
// `options` options, [blocks, options] int64, and blocks_cp of those counts (0-d double; equal to blocks_cp up to
// the order of its sum).
at::Tensor option_counts_on_device(const std::vector<BlockDecision>& decisions, size_t options);
at::Tensor blocks_cp_on_device(const std::vector<BlockDecision>& decisions, const at::Tensor& counts,
                               const OptionSet& options);

}  // namespace fractrain
