#pragma once
// What a DFQ-gated model exposes beyond QuantizedModel: its option set, how candidate precisions are executed,
// and the gate decisions of its last forward pass (for the cost term of the loss and the selection statistics).
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "fractrain/precision/option_set.h"

namespace fractrain {

// mixed: each gated block runs once, every sample quantized at its own option; skipped samples are not
// computed. candidates: every option runs on the whole batch and outputs are mixed per sample (the released
// code's way; K times the compute, training only). See docs/dfq.md.
enum class GateExecution { Mixed, Candidates };
GateExecution parse_gate_execution(const std::string& text);  // "mixed" | "candidates"
const char* to_string(GateExecution execution);

struct BlockGating {
  std::string block;               // module path, e.g. "stage2.0"
  at::Tensor mask;                 // [N, K] straight-through one-hot (differentiable in training)
  std::vector<int64_t> decisions;  // [N] chosen option per sample
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

class GatedNetwork {
 public:
  virtual ~GatedNetwork() = default;
  virtual const OptionSet& option_set() const = 0;
  virtual GateExecution execution() const = 0;
  // One entry per gated block, in execution order, from the last forward pass that ran the gates.
  virtual const std::vector<BlockGating>& last_gating() const = 0;
  virtual std::vector<std::string> gated_blocks() const = 0;
};

}  // namespace fractrain
