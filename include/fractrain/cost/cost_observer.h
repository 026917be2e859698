#pragma once
// The hook through which quantized layers report what they executed. The cost meter (bit-weighted MACs,
// cp, energy) implements it; layers know nothing about cost beyond their own MAC count.
#include <cstdint>
#include <string>

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

class CostObserver {
 public:
  virtual ~CostObserver() = default;
  virtual void on_layer(const LayerExecution& execution) = 0;
};

}  // namespace fractrain
