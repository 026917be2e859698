#pragma once
// A matmul between two activations (the Q K^T scores and the A V context of attention), quantized like the
// operands of a QLinear: the left operand at the plan's activation width, the right one (K or V, in the place a
// weight takes in a linear layer) at the plan's weight width -- in every static and PFQ plan both are FW-n --
// each with one min/max range per tensor and deterministic rounding; the gradient arriving at the output at the
// gradient width with stochastic rounding (DESIGN.md 4.1). Neither operand is a parameter, so there are no
// running statistics: the range is the tensor's own in training and in evaluation alike.
//
// It reports its executions to the cost observer as LayerKind::Attention, so they are counted as 4.7 asks (MACs
// from shapes, bit products of the widths above; see docs/transformer.md).
#include <torch/nn/module.h>

#include <array>
#include <memory>
#include <optional>
#include <string>

#include "fractrain/cost/cost_observer.h"
#include "fractrain/cost/layer_operands.h"
#include "fractrain/nn/execution_log.h"
#include "fractrain/nn/quantized_layer.h"

namespace fractrain {

class QMatmul : public torch::nn::Module {
 public:
  // a [B, ..., M, K] x b [B, ..., K, N] -> [B, ..., M, N] at the precision the plan gives this layer's name.
  // Per-sample precisions (DFQ) are refused with fractrain::Error.
  at::Tensor forward(const at::Tensor& a, const at::Tensor& b, const PrecisionPlan& plan);

  const std::string& layer_name() const { return layer_name_; }
  void set_layer_name(std::string name) { layer_name_ = std::move(name); }
  // Selects this layer's stochastic-rounding noise stream (distinct from every other quantized layer's).
  void set_layer_index(int64_t index) { layer_index_ = index; }
  void set_cost_observer(CostObserver* observer) { cost_observer_ = observer; }
  void set_quantizer_settings(const QuantizerSettings& settings) { settings_ = settings; }

  // Per sample, from the last forward: MACs, and elements of the two operands together and of the result (what the
  // cost model moves).
  int64_t last_macs_per_sample() const { return macs_per_sample_; }
  ActivationMatmulSizes last_operand_sizes() const { return {operand_elements_, output_elements_}; }

  // Under integer execution: which passes ran on integer codes (integer/integer_matmul.h) and which fell back. The
  // left operand's gradient counts as the error backward, the right one's (in a weight's place) as the weight
  // gradient.
  ExecutionCounts execution_counts() const { return execution_log_->counts(); }
  // Under integer execution at `precision`: "integer" or "simulated (<why>)" for the forward and the two operands'
  // gradients, as QuantizedLayer::integer_passes (`fractrain cost` lists them).
  std::array<std::string, 3> integer_passes(const LayerPrecision& precision) const;

 private:
  // The product on integer codes with the operands' ranges already taken, or nullopt (logged) where it cannot run.
  std::optional<at::Tensor> forward_integer(const at::Tensor& a, const at::Tensor& b, const LayerPrecision& precision,
                                            const std::optional<QuantRange>& a_range,
                                            const std::optional<QuantRange>& b_range, uint64_t noise_step);
  GradientQuantization gradient_quantization(const LayerPrecision& precision, uint64_t noise_step) const;

  std::shared_ptr<ExecutionLog> execution_log_ = std::make_shared<ExecutionLog>();
  std::string layer_name_;
  int64_t layer_index_ = 0;
  CostObserver* cost_observer_ = nullptr;
  QuantizerSettings settings_;
  int64_t macs_per_sample_ = 0, operand_elements_ = 0, output_elements_ = 0;
};

}  // namespace fractrain
