#pragma once
// The hook through which quantized layers report what they executed. The cost meter (bit-weighted MACs,
// cp, energy) implements it; layers know nothing about cost beyond their own MAC count.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fractrain/precision/layer_precision.h"

namespace fractrain {

// Attention: a matmul between two activations (QK^T or AV of a Transformer); its "weight" operand is K or V.
enum class LayerKind { Conv, DepthwiseConv, Linear, Attention };

inline const char* to_string(LayerKind kind) {
  switch (kind) {
    case LayerKind::Conv: return "conv";
    case LayerKind::DepthwiseConv: return "dwconv";
    case LayerKind::Linear: return "linear";
    case LayerKind::Attention: return "attention";
  }
  return "?";
}

struct LayerExecution {
  const std::string& layer;         // full module path, e.g. "stage2.0.conv1"
  LayerKind kind;
  int64_t macs_per_sample;          // forward MACs of one sample at this layer's shapes
  int64_t batch;                    // samples in this execution
  const LayerPrecision& precision;  // what was actually executed (per batch or per sample)
  bool training;                    // true: a backward pass (error + weight gradient) follows
};

// An execution whose per-sample widths stayed on the device (DFQ's masked execution, models/gated_block.h): how
// many samples ran at each option is a device tensor, so that reporting it needs no host read.
struct LayerExecutionByOption {
  const std::string& layer;
  LayerKind kind;
  int64_t macs_per_sample;
  const at::Tensor& option_counts;            // [K] int64 on the device: the samples that ran option k
  const std::vector<Precision>& options;       // [K]: what option k runs at this layer (skip: nothing)
  bool training;
};

// The per-sample precision of the samples that ran (every option but skip), `counts[k]` of them at option k, in
// option order. Throws fractrain::Error when the options' weight widths differ (one layer has one weight width).
LayerPrecision samples_by_option(const std::vector<Precision>& options, const std::vector<int64_t>& counts);

class CostObserver {
 public:
  virtual ~CostObserver() = default;
  virtual void on_layer(const LayerExecution& execution) = 0;
  // By default the counts are read on the host (on a GPU: a synchronisation) and reported as on_layer with the
  // running samples' widths. The cost meter overrides it to read them later (cost/cost_meter.h).
  virtual void on_layer_by_option(const LayerExecutionByOption& execution);
};

}  // namespace fractrain
