#pragma once
// What one quantized layer executes in one pass: one weight width for the layer, and activation/gradient
// widths either for the whole batch or per sample (DFQ hands each sample its own option).
#include <ATen/core/Tensor.h>

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
  // DFQ's masked execution (models/gated_block.h), which keeps the gates' decisions on the data's device: the
  // widths per sample as int32 tensors [N] there, and `runs` (float [N], 1 or 0) marking the samples that run
  // the block. The others skip it but are computed all the same, so that shapes never depend on the decisions:
  // their widths must be 0 (passed through unquantized), and every range, BatchNorm statistic and cost leaves
  // them out.
  struct DeviceWidths {
    at::Tensor act, grad, runs;
  };
  static LayerPrecision per_sample_on_device(int weight_bits, DeviceWidths widths);

  bool is_per_sample() const { return per_sample_; }
  // True for per_sample_on_device: the widths are not on the host (sample_act_bits() and the like are empty).
  bool on_device() const { return device_.act.defined(); }
  const DeviceWidths& device_widths() const { return device_; }
  // The samples that run (undefined unless on_device()): what BatchNorm takes its statistics over.
  const at::Tensor& running_samples() const { return device_.runs; }
  int weight_bits() const { return weight_; }
  int act_bits() const { return act_; }    // uniform case
  int grad_bits() const { return grad_; }  // uniform case
  const std::vector<int>& sample_act_bits() const { return sample_act_; }
  const std::vector<int>& sample_grad_bits() const { return sample_grad_; }
  int64_t samples() const { return on_device() ? device_.act.size(0) : static_cast<int64_t>(sample_act_.size()); }

  // True when no activation / gradient of any sample is quantized (so the quantizer can be skipped); false on
  // the device, where that is not known without reading the widths back.
  bool act_full() const;
  bool grad_full() const;
  // The precision sample i runs at (uniform and per sample on the host; throws on the device).
  Precision for_sample(int64_t i) const;
  // For messages: the uniform precision, sample 0's followed by " (per sample)", or that it is on the device.
  std::string describe() const;

 private:
  int weight_ = 0, act_ = 0, grad_ = 0;
  bool per_sample_ = false;
  std::vector<int> sample_act_, sample_grad_;
  DeviceWidths device_;
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
