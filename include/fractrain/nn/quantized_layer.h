#pragma once
// Common machinery of QConv2d and QLinear: activation range statistics, the three quantization points
// (input activations, weights, output gradient), and reporting to the cost observer. A quantized execution
// computes the float op on quantized operands without autograd and attaches one backward node that quantizes
// the output gradient and differentiates the op on the (re)quantized operands; see
// src/nn/quantized_layer_backward.h for why the quantized input is recomputed rather than kept.
#include <torch/nn/module.h>

#include <memory>
#include <array>
#include <optional>
#include <string>

#include "fractrain/cost/cost_observer.h"
#include "fractrain/cost/layer_operands.h"
#include "fractrain/nn/execution_log.h"
#include "fractrain/nn/execution_mode.h"
#include "fractrain/nn/layer_gradients.h"
#include "fractrain/precision/layer_precision.h"
#include "fractrain/quant/fake_quantize.h"
#include "fractrain/quant/range_agreement.h"
#include "fractrain/quant/straight_through.h"

namespace fractrain {

struct InputQuantization;  // internal: how an input is quantized, forward and (again) backward
struct IntegerShape;       // internal: the layer as the integer kernels see it (src/nn/integer_layer_backward.h)

struct QuantizerSettings {
  // Running activation range for eval mode: new = momentum * old + (1 - momentum) * batch.
  float activation_momentum = 0.9f;
  bool snap_zero_point = false;
  // How the passes compute (nn/execution_mode.h), and the weight the error backward multiplies.
  ExecutionMode execution = ExecutionMode::Simulated;
  ErrorWeightRanges error_weight_ranges = ErrorWeightRanges::PerOutputChannel;
  // Run seed for stochastic rounding of gradients; the noise stream also mixes in the layer index and step.
  uint64_t noise_seed = 0;
  // Data parallel (null and 0 in one process): training ranges are agreed across the ranks, and this rank's
  // samples start at `first_sample` of each global batch (quant/range_agreement.h, GradientQuantization).
  std::shared_ptr<RangeAgreement> range_agreement;
  int64_t first_sample = 0;
  // CUDA Graphs (train/graphed_step.h): the step number as an int64 [1] tensor on the device, which the trainer
  // sets before every step; gradients quantized on the device draw their noise from it (GradientQuantization::
  // noise_step) rather than from a stream fixed when the step was captured.
  at::Tensor noise_step;
};

class QuantizedLayer : public torch::nn::Module {
 public:
  // Runs the layer at the precision the plan gives for this layer's name.
  at::Tensor forward(const at::Tensor& x, const PrecisionPlan& plan);
  // Runs the layer at an explicit precision; `noise_step` selects the stochastic-rounding noise.
  at::Tensor forward(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step);

  // Full module path, e.g. "stage1.0.conv1". Set by the model once the module tree is built.
  const std::string& layer_name() const { return layer_name_; }
  void set_layer_name(std::string name) { layer_name_ = std::move(name); }
  int64_t layer_index() const { return layer_index_; }
  void set_layer_index(int64_t index) { layer_index_ = index; }

  void set_cost_observer(CostObserver* observer) { cost_observer_ = observer; }
  CostObserver* cost_observer() const { return cost_observer_; }
  // While false, executions are not reported to the cost observer; whoever turns it off reports the cost
  // with report_cost (DFQ `candidates` execution runs every option but charges only the chosen one).
  void set_cost_reporting(bool on) { cost_reporting_ = on; }
  // Reports an execution of `batch` samples at `precision` with the MACs per sample of the last forward pass.
  void report_cost(int64_t batch, const LayerPrecision& precision);
  // The same for an execution whose per-sample widths stayed on the device (DFQ masked execution): option_counts
  // [K] (int64, on the device) samples ran at options[k].
  void report_cost_by_option(const at::Tensor& option_counts, const std::vector<Precision>& options);

  // Diagnosis of a non-finite loss: while on, forward() throws fractrain::Error naming this layer when its
  // output holds a NaN or Inf.
  void set_check_finite_output(bool on) { check_finite_output_ = on; }
  // Fault injection (tests; TrainOptions::inject_nan in the trainer): while on, the output's first element is NaN.
  void set_inject_nan(bool on) { inject_nan_ = on; }
  void set_quantizer_settings(const QuantizerSettings& settings) { settings_ = settings; }
  // The one declaration of a precision this layer keeps in every quantized run, whatever the plan or the DFQ
  // option says (MobileNetV2's depthwise convs at FW-8/BW-16, declared by InvertedResidual); FP32 runs keep it
  // FP32. Static plans (make_static_plan), gated blocks and their cost read it from here.
  void fix_precision(const Precision& precision) { fixed_precision_ = precision; }
  const std::optional<Precision>& fixed_precision() const { return fixed_precision_; }
  const QuantizerSettings& quantizer_settings() const { return settings_; }

  // Activation range used in eval mode (running average of training batches). Valid once trained.
  QuantRange running_activation_range() const;
  // Under integer execution: which passes ran on integer kernels and which fell back (and why).
  ExecutionCounts execution_counts() const { return execution_log_->counts(); }
  bool has_activation_statistics() const;

  virtual LayerKind kind() const = 0;
  virtual const at::Tensor& weight_tensor() const = 0;
  // Undefined when the layer has no bias.
  virtual const at::Tensor& bias_tensor() const = 0;
  // What the cost model needs to size this layer's operands from its measured MACs.
  virtual WeightedLayerGeometry operand_geometry() const = 0;
  // Groups of the op (a grouped conv's): dimension 1 of the weight holds in_channels / groups input channels of
  // its output channel's group, which per-input-channel weight ranges tell apart.
  virtual int64_t weight_groups() const { return 1; }

 protected:
  QuantizedLayer();
  // The float op (conv or matmul, plus bias) on already quantized operands.
  virtual at::Tensor compute(const at::Tensor& x, const at::Tensor& w) = 0;
  // The gradients of compute() for the backward pass. A function object holding copies of the settings it
  // needs (stride, ...), so that the backward pass does not depend on the layer object still existing.
  virtual LayerGradients gradients() const = 0;
  // Forward MACs per sample given the input and output shapes.
  virtual int64_t macs_per_sample(const at::Tensor& x, const at::Tensor& y) const = 0;
  // The layer for x as the integer kernels see it; nullopt when they cannot run it (empty: integer execution
  // falls back to simulated, saying `integer_refusal()`).
  virtual std::optional<IntegerShape> integer_shape(const at::Tensor& x) const;
  virtual std::string integer_refusal() const { return std::string("no integer kernel for ") + to_string(kind()) + " layers"; }

 public:
  // Under integer execution at `precision`: "integer" or "simulated (<why>)" for the forward, the error backward
  // and the weight gradient, without running anything (`fractrain cost` prints it). Widths per sample count as
  // their widest, except that a backward which splits by sample says so ("integer, split by sample (...)").
  std::array<std::string, 3> integer_passes(const LayerPrecision& precision) const;

 protected:
  // Whether this layer's kind and shape have integer kernels at all.
  virtual bool has_integer_kernel() const { return false; }

 private:
  at::Tensor forward_quantized(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step);
  // The integer execution of forward_quantized, or nullopt (logged) when a pass cannot run on integer codes.
  std::optional<at::Tensor> forward_integer(const at::Tensor& x, const LayerPrecision& precision,
                                            const InputQuantization& input, uint64_t noise_step,
                                            bool graph_needed);
  // Whether this execution must be differentiable (autograd on, and x, the weight or the bias needs a gradient).
  bool needs_graph(const at::Tensor& x) const;
  bool integer_execution() const { return settings_.execution == ExecutionMode::Integer; }
  // Why integer execution cannot run this layer at this weight width whatever its input (empty: it can).
  std::string integer_layer_refusal(int weight_bits) const;
  // Integer kernels need integer zero points: integer execution snaps them whatever the settings say, so that
  // its simulated fallbacks compute the same quantization.
  bool snaps_zero_point() const { return settings_.snap_zero_point || integer_execution(); }
  bool agrees_ranges(const LayerPrecision& precision) const;
  InputQuantization input_quantization(const at::Tensor& x, const LayerPrecision& precision);
  at::Tensor quantize_weight(int bits) const;
  std::optional<GradientQuantization> gradient_quantization(const LayerPrecision& precision,
                                                            uint64_t noise_step) const;
  QuantRange input_range(const at::Tensor& x);
  // input_range on the device path (quant/device_quantize.h): float [2] on x's device, never read back.
  at::Tensor device_input_range(const at::Tensor& x);
  // The same for DFQ's masked execution: the range of the samples whose `runs` flag is 1; the running range moves
  // only when some sample ran.
  at::Tensor running_samples_range(const at::Tensor& x, const at::Tensor& runs);
  void update_running_range(QuantRange batch);

  std::string layer_name_;
  int64_t layer_index_ = 0;
  CostObserver* cost_observer_ = nullptr;
  bool cost_reporting_ = true;
  bool check_finite_output_ = false, inject_nan_ = false;
  int64_t last_macs_per_sample_ = 0;
  QuantizerSettings settings_;
  std::optional<Precision> fixed_precision_;
  std::shared_ptr<ExecutionLog> execution_log_ = std::make_shared<ExecutionLog>();
  // Buffers (saved in checkpoints): running lo and range, and whether any batch has been seen.
  at::Tensor running_lo_, running_span_, statistics_seen_;
};

}  // namespace fractrain
