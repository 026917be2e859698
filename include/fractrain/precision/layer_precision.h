#pragma once
// What one quantized layer executes in one pass: one weight width for the layer, and activation/gradient
// widths either for the whole batch or per sample (DFQ hands each sample its own option).
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "fractrain/precision/precision.h"

namespace fractrain {

class LayerPrecision {
 public:
  LayerPrecision() = default;
  static LayerPrecision uniform(const Precision& p);
  // One activation and one gradient width per sample (dimension 0 of the layer's input). No samples is allowed:
  // a data-parallel rank runs a DFQ block on none when all its samples skip it (models/gated_block.h).
  static LayerPrecision per_sample(int weight_bits, std::vector<int> act_bits, std::vector<int> grad_bits);

  bool is_per_sample() const { return per_sample_; }
  int weight_bits() const { return weight_; }
  int act_bits() const { return act_; }    // uniform case
  int grad_bits() const { return grad_; }  // uniform case
  const std::vector<int>& sample_act_bits() const { return sample_act_; }
  const std::vector<int>& sample_grad_bits() const { return sample_grad_; }
  int64_t samples() const { return static_cast<int64_t>(sample_act_.size()); }

  // True when no activation / gradient of any sample is quantized (so the quantizer can be skipped).
  bool act_full() const;
  bool grad_full() const;
  // The precision sample i runs at (valid in both cases).
  Precision for_sample(int64_t i) const;

 private:
  int weight_ = 0, act_ = 0, grad_ = 0;
  bool per_sample_ = false;
  std::vector<int> sample_act_, sample_grad_;
};

// What one forward pass uses: a default for every quantized layer plus per-layer overrides by layer name.
class PrecisionPlan {
 public:
  PrecisionPlan() = default;
  static PrecisionPlan uniform(const Precision& p) {
    PrecisionPlan plan;
    plan.default_ = LayerPrecision::uniform(p);
    return plan;
  }
  void set_layer(const std::string& layer_name, LayerPrecision precision) {
    overrides_[layer_name] = std::move(precision);
  }
  const LayerPrecision& for_layer(const std::string& layer_name) const {
    auto it = overrides_.find(layer_name);
    return it == overrides_.end() ? default_ : it->second;
  }
  // The layers with their own precision, sorted (QuantizedModel::check_plan refuses names a model lacks).
  std::vector<std::string> overridden_layers() const;

  // Selects the stochastic-rounding noise of this pass: the same (seed, noise_step) gives the same bits.
  uint64_t noise_step = 0;
  // In a DFQ-gated model: true, the gates choose the precision of every gated block; false, every layer runs
  // at this plan's precision and no gate runs (cost profiling, evaluation at a fixed precision).
  bool gating = true;

 private:
  LayerPrecision default_;
  std::unordered_map<std::string, LayerPrecision> overrides_;
};

}  // namespace fractrain
