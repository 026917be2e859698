#pragma once
// Running one gateable block (a ResNet BasicBlock, a MobileNetV2 inverted residual) under DFQ gate decisions
// (DESIGN.md 4.5), in the two execution modes.
#include "fractrain/models/gateable_block.h"
#include "fractrain/nn/decision_gate.h"
#include "fractrain/precision/option_set.h"

namespace fractrain {

// The option set as tensors on one device, which masked execution indexes with the gates' decisions there.
struct OptionTables {
  at::Tensor act, grad;   // int32 [K]: each option's activation and gradient width, 0 for skip
  at::Tensor runs;        // float [K]: 0 for skip, 1 for the others
  at::Tensor columns;     // int64: the options that are not skip, in order
  at::Tensor column_act;  // int32: their activation widths (the option gradient's)
  static OptionTables build(const OptionSet& options, const at::Device& device);
  bool on(const at::Device& device) const { return act.defined() && act.device() == device; }
};

struct GatedBlockRun {
  const OptionSet& options;
  uint64_t noise_step = 0;
  bool snap_zero_point = false;
  // Data parallel (null in one process): ranges are agreed across ranks, which makes every quantized layer a
  // collective, so a block runs (on no samples) even when every local sample skips it.
  std::shared_ptr<RangeAgreement> range_agreement{};
  // Masked execution: the option set's tables on the input's device.
  const OptionTables* tables = nullptr;
};

// mixed: the block runs once on the samples that do not skip, each quantized at its own option (activations
// before each option-following conv, gradients after it; fixed-precision layers at their own); the gate's
// task-loss gradient comes through the option gradient (nn/option_gradient.h) at every option-following conv
// input, and, for skip, through the scale (1 - mask[n, skip]) on the residual branch. Skipped samples output
// their (identity) shortcut and are never computed.
at::Tensor run_gated_block_mixed(GateableBlock& block, const at::Tensor& x, const GateDecision& decision,
                                 const GatedBlockRun& run);

// masked: mixed execution in shapes that do not depend on the decisions, so that they never need to come to the
// host (a GPU step without synchronisation, CUDA Graphs; docs/gpu.md): the block runs on every sample, each
// quantized at its option's widths read from the tables on the device with the decisions as indices. A sample
// that skips runs at width 0 and stays out of every range and BatchNorm statistic (LayerPrecision::
// per_sample_on_device); its branch output is multiplied by 0, so its output, its gradients and the gate's are
// those of mixed execution, which never computes it. The same model, in other words, as `mixed`, at the cost
// of computing skipped samples; the stochastic rounding of gradients draws its noise by position in the whole
// batch rather than among the samples that run, so the two agree in distribution, not bit for bit. In one
// process only (the ranges are not agreed across ranks).
at::Tensor run_gated_block_masked(GateableBlock& block, const at::Tensor& x, const GateDecision& decision,
                                  const GatedBlockRun& run);
// candidates: every option runs on the whole batch at its uniform precision and the outputs are mixed,
// y = sum_k mask[:, k] y_k (skip: y_k = the shortcut). The cost meter is charged for each sample's chosen
// option only (each layer at what it executes for that option), as if executed in mixed mode: the other K - 1
// executions are simulation overhead.
at::Tensor run_gated_block_candidates(GateableBlock& block, const at::Tensor& x, const GateDecision& decision,
                                      const GatedBlockRun& run);

}  // namespace fractrain
