#pragma once
// Running one gateable block (a ResNet BasicBlock, a MobileNetV2 inverted residual) under DFQ gate decisions
// (DESIGN.md 4.5), in the two execution modes.
#include "fractrain/models/gateable_block.h"
#include "fractrain/nn/decision_gate.h"
#include "fractrain/precision/option_set.h"

namespace fractrain {

struct GatedBlockRun {
  const OptionSet& options;
  uint64_t noise_step = 0;
  bool snap_zero_point = false;
  // Data parallel (null in one process): ranges are agreed across ranks, which makes every quantized layer a
  // collective, so a block runs (on no samples) even when every local sample skips it.
  std::shared_ptr<RangeAgreement> range_agreement{};
};

// mixed: the block runs once on the samples that do not skip, each quantized at its own option (activations
// before each option-following conv, gradients after it; fixed-precision layers at their own); the gate's
// task-loss gradient comes through the option gradient (nn/option_gradient.h) at every option-following conv
// input, and, for skip, through the scale (1 - mask[n, skip]) on the residual branch. Skipped samples output
// their (identity) shortcut and are never computed.
at::Tensor run_gated_block_mixed(GateableBlock& block, const at::Tensor& x, const GateDecision& decision,
                                 const GatedBlockRun& run);

// candidates: every option runs on the whole batch at its uniform precision and the outputs are mixed,
// y = sum_k mask[:, k] y_k (skip: y_k = the shortcut). The cost meter is charged for each sample's chosen
// option only (each layer at what it executes for that option), as if executed in mixed mode: the other K - 1
// executions are simulation overhead.
at::Tensor run_gated_block_candidates(GateableBlock& block, const at::Tensor& x, const GateDecision& decision,
                                      const GatedBlockRun& run);

}  // namespace fractrain
