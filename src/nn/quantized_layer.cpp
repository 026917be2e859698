#include "fractrain/nn/quantized_layer.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "fractrain/integer/direct_weight_gradient.h"
#include "fractrain/integer/integer_support.h"
#include "fractrain/quant/device_quantize.h"
#include "fractrain/quant/quant_math.h"
#include "fractrain/util/error.h"
#include "integer_layer_backward.h"
#include "quantized_layer_backward.h"

namespace fractrain {
namespace {

// The running statistics are one-element buffers. On the CPU they are read and written through their data
// pointers: as 0-dim tensor ops and item() calls they would cost more than the rest of the bookkeeping.
bool direct_access(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat; }

float read_scalar(const at::Tensor& t) { return direct_access(t) ? *t.data_ptr<float>() : t.item<float>(); }

void write_scalar(at::Tensor& t, float value) {
  if (direct_access(t)) {
    *t.data_ptr<float>() = value;
  } else {
    torch::NoGradGuard no_grad;
    t.fill_(value);
  }
}

}  // namespace

QuantizedLayer::QuantizedLayer() {
  running_lo_ = register_buffer("act_running_lo", torch::zeros({1}));
  running_span_ = register_buffer("act_running_span", torch::zeros({1}));
  statistics_seen_ = register_buffer("act_statistics_seen", torch::zeros({1}));
}

bool QuantizedLayer::has_activation_statistics() const { return read_scalar(statistics_seen_) > 0; }

QuantRange QuantizedLayer::running_activation_range() const {
  const float lo = read_scalar(running_lo_);
  return {lo, lo + read_scalar(running_span_)};
}

void QuantizedLayer::update_running_range(QuantRange batch) {
  const float m = settings_.activation_momentum;
  if (direct_access(running_lo_) && direct_access(running_span_) && direct_access(statistics_seen_)) {
    quant_math::update_running_range(running_lo_.data_ptr<float>(), running_span_.data_ptr<float>(),
                                     statistics_seen_.data_ptr<float>(), batch.lo, batch.hi, m);
    return;
  }
  float lo = read_scalar(running_lo_), span = read_scalar(running_span_), seen = read_scalar(statistics_seen_);
  quant_math::update_running_range(&lo, &span, &seen, batch.lo, batch.hi, m);
  write_scalar(running_lo_, lo);
  write_scalar(running_span_, span);
  write_scalar(statistics_seen_, seen);
}

QuantRange QuantizedLayer::input_range(const at::Tensor& x) {
  if (!is_training() && has_activation_statistics()) return running_activation_range();
  if (!is_training()) return tensor_range(x);
  // In training the range is the whole batch's (across data-parallel ranks), so the running range stays the
  // same on every rank.
  const QuantRange batch = agreed_range(x, settings_.range_agreement.get());
  update_running_range(batch);
  return batch;
}

// A per-sample (DFQ) precision differs between data-parallel ranks, and may leave all of one rank's samples
// (or none: a block all of them skip) unquantized while another rank's are not. Whether a layer takes part in a
// range agreement (a collective) must not depend on that, so such a layer always does, in training.
bool QuantizedLayer::agrees_ranges(const LayerPrecision& precision) const {
  return settings_.range_agreement && is_training() && precision.is_per_sample();
}

at::Tensor QuantizedLayer::device_input_range(const at::Tensor& x) {
  if (!is_training()) return device_quant::evaluation_range(running_lo_, running_span_, statistics_seen_, x);
  at::Tensor batch = device_quant::range_of(x);
  device_quant::update_running_range(running_lo_, running_span_, statistics_seen_, batch,
                                     settings_.activation_momentum);
  return batch;
}

at::Tensor QuantizedLayer::running_samples_range(const at::Tensor& x, const at::Tensor& runs) {
  if (!is_training()) return device_quant::evaluation_range(running_lo_, running_span_, statistics_seen_, x);
  at::Tensor batch = device_quant::range_of_running(x, runs);
  device_quant::update_running_range_where(running_lo_, running_span_, statistics_seen_, batch,
                                           settings_.activation_momentum, (runs > 0).any());
  return batch;
}

InputQuantization QuantizedLayer::input_quantization(const at::Tensor& x, const LayerPrecision& precision) {
  InputQuantization q;
  if (precision.on_device()) {
    // DFQ's masked execution: the range is the running samples' and the widths stay where they are, on any
    // device (the others' widths are 0: they pass through).
    if (settings_.range_agreement)
      throw Error("layer " + layer_name_ + ": DFQ's masked execution runs in one process (dfq.execution = "
                  "\"mixed\" under data parallelism)");
    q.snap_zero_point = snaps_zero_point();
    q.device_range = running_samples_range(x, precision.running_samples());
    q.device_row_bits = precision.device_widths().act;
    return q;
  }
  if (precision.act_full() && !agrees_ranges(precision)) return q;
  q.bits = precision.act_bits();
  if (precision.is_per_sample()) q.row_bits = precision.sample_act_bits();
  q.snap_zero_point = snaps_zero_point();
  // The device path keeps the range on the device. Not under data parallelism (the ranks agree on a range
  // through a host-side collective) nor integer execution (CPU kernels that take host-side ranges).
  if (device_quant::applies(x) && !settings_.range_agreement && !integer_execution()) {
    q.device_range = device_input_range(x);
    if (!q.row_bits.empty()) q.device_row_bits = device_quant::widths_tensor(q.row_bits, x);
    return q;
  }
  q.range = input_range(x);
  return q;
}

at::Tensor QuantizedLayer::quantize_weight(int bits) const {
  const at::Tensor w = weight_tensor().detach();
  if (bits == 0) return w;
  RECORD_USER_SCOPE("fractrain::quantize_weight");
  QuantizeOptions options;
  options.snap_zero_point = snaps_zero_point();
  return fake_quantize_per_channel(w, bits, options);
}

std::optional<GradientQuantization> QuantizedLayer::gradient_quantization(const LayerPrecision& precision,
                                                                          uint64_t noise_step) const {
  if (!is_training() || (precision.grad_full() && !agrees_ranges(precision))) return std::nullopt;
  GradientQuantization spec;
  spec.bits = precision.grad_bits();
  if (precision.on_device()) {
    spec.device_row_bits = precision.device_widths().grad;
    spec.running_samples = precision.running_samples();
  } else if (precision.is_per_sample()) {
    spec.row_bits = precision.sample_grad_bits();
  }
  spec.noise = PhiloxStream{settings_.noise_seed, mix_stream(static_cast<uint64_t>(layer_index_), noise_step)};
  spec.noise_step = settings_.noise_step;
  spec.noise_layer = static_cast<uint64_t>(layer_index_);
  spec.snap_zero_point = snaps_zero_point();
  spec.range_agreement = settings_.range_agreement;
  spec.first_sample = settings_.first_sample;
  return spec;
}

at::Tensor QuantizedLayer::forward_quantized(const at::Tensor& x, const LayerPrecision& precision,
                                             uint64_t noise_step) {
  const bool graph_needed = needs_graph(x);
  QuantizedLayerGraph graph;
  {
    torch::NoGradGuard no_grad;
    graph.input = input_quantization(x, precision);
  }
  if (integer_execution())
    if (std::optional<at::Tensor> y = forward_integer(x, precision, graph.input, noise_step, graph_needed)) return *y;
  at::Tensor y;
  {
    torch::NoGradGuard no_grad;
    graph.quantized_weight = quantize_weight(precision.weight_bits());
    const at::Tensor x_q = graph.input.apply_transient(x);
    y = compute(x_q, graph.quantized_weight);
    // Q(x) is scratch memory, overwritten by the next layer: the result must not be a view of it.
    if (!x_q.is_same(x) && y.is_alias_of(x_q))
      throw Error("layer " + layer_name_ + ": compute() returned a view of its input");
  }  // The backward pass requantizes x (see quantized_layer_backward.h).
  if (!graph_needed) return y;
  graph.gradient = gradient_quantization(precision, noise_step);
  graph.gradients = gradients();
  if (settings_.error_weight_ranges == ErrorWeightRanges::PerInputChannel && precision.weight_bits() != 0) {
    // The error pass's weight is quantized in the backward pass, from the FP32 weight that node saves instead of
    // Q(w) (a parameter: no copy). Quantizing it here would keep a second weight-sized tensor alive per layer
    // execution from forward to backward, and quantize it for layers whose dX nobody asks for (the first layer);
    // the price is one weight quantization per backward, small next to the layer's convolution or matmul.
    graph.error_weight = ErrorWeightQuantization{precision.weight_bits(), weight_groups(), snaps_zero_point()};
    graph.quantized_weight = weight_tensor().detach();
  }
  return attach_quantized_layer_backward(std::move(y), x, weight_tensor(), bias_tensor(), std::move(graph));
}

bool QuantizedLayer::needs_graph(const at::Tensor& x) const {
  const at::Tensor& w = weight_tensor();
  const at::Tensor& b = bias_tensor();
  return at::GradMode::is_enabled() &&
         (x.requires_grad() || w.requires_grad() || (b.defined() && b.requires_grad()));
}

std::optional<IntegerShape> QuantizedLayer::integer_shape(const at::Tensor&) const { return std::nullopt; }

std::string QuantizedLayer::integer_layer_refusal(int weight_bits) const {
  if (!integer_support().available) return integer_support().detail;
  if (!has_integer_kernel()) return integer_refusal();
  return integer_width_refusal({weight_bits}, "weight");
}

std::array<std::string, 3> QuantizedLayer::integer_passes(const LayerPrecision& precision) const {
  auto widest = [&](const std::vector<int>& per_sample, int uniform) {
    return precision.is_per_sample() && !per_sample.empty() ? *std::max_element(per_sample.begin(), per_sample.end())
                                                            : uniform;
  };
  const int act = widest(precision.sample_act_bits(), precision.act_bits());
  const int grad = widest(precision.sample_grad_bits(), precision.grad_bits());
  const std::string common = integer_layer_refusal(precision.weight_bits());
  // Depthwise convolutions run on loops of their own, exact at any width; dense ones on oneDNN's int8 products.
  const bool dense = weight_groups() == 1;
  std::string forward = common.empty() ? integer_width_refusal({act}, "activation") : common;
  if (forward.empty() && dense) forward = unsigned_width_refusal({act}, "activation");
  const std::string backward = !forward.empty() ? forward : integer_width_refusal({grad}, "gradient");
  const std::string error = !backward.empty() || !dense ? backward : unsigned_width_refusal({grad}, "gradient");
  // DFQ's widths per sample: a few wide gradients split the backward by sample (integer_layer_backward.h).
  const int64_t split_off =
      forward.empty() && precision.is_per_sample() ? samples_split_off(precision.sample_grad_bits()) : 0;
  const auto pass = [&](const std::string& refusal) {
    if (refusal.empty()) return std::string("integer");
    if (split_off > 0 && refusal == backward)
      return "integer, split by sample (" + std::to_string(split_off) + " of " +
             std::to_string(precision.sample_grad_bits().size()) + " samples simulated: " + refusal + ")";
    return "simulated (" + refusal + ")";
  };
  return {pass(forward), pass(error), pass(backward)};
}

std::optional<at::Tensor> QuantizedLayer::forward_integer(const at::Tensor& x, const LayerPrecision& precision,
                                                          const InputQuantization& input, uint64_t noise_step,
                                                          bool graph_needed) {
  const std::optional<IntegerShape> shape = integer_shape(x);
  const std::vector<int> act_bits =
      input.row_bits.empty() ? std::vector<int>(static_cast<size_t>(x.size(0)), input.bits) : input.row_bits;
  std::string refusal = integer_layer_refusal(precision.weight_bits());
  if (refusal.empty() && !shape)
    refusal = integer_refusal();
  else if (refusal.empty() && (!x.device().is_cpu() || x.scalar_type() != at::kFloat))
    refusal = "integer kernels run on CPU float tensors";
  else if (refusal.empty() && precision.on_device())
    refusal = "DFQ's masked execution keeps its widths on the device; integer kernels take them on the host";
  else if (refusal.empty() && x.size(0) == 0)
    refusal = "no samples (a DFQ block every sample of this rank skips)";
  if (refusal.empty()) refusal = integer_width_refusal(act_bits, "activation");
  if (refusal.empty() && !shape->geometry.depthwise()) refusal = unsigned_width_refusal(act_bits, "activation");
  std::optional<integer::FeatureCodes> codes;
  std::optional<integer::WeightCodes> weight_codes;
  if (refusal.empty()) {
    integer::FeatureQuantization q;
    q.sample_bits = act_bits;
    q.range = input.range;
    // The weight gradient's own kernel and the depthwise passes read the codes channels first; the quantizer
    // makes them so on the way.
    q.planar = shape->layout == integer::FeatureLayout::ChannelsFirst &&
               (integer::direct_kernel_usable() || shape->geometry.depthwise());
    try {
      // A weight range of width ~0 far from 0 (a 1x1 depthwise filter is one value) has no integer zero point.
      weight_codes = integer::quantize_weight(weight_tensor().detach(), precision.weight_bits(), 0);
      codes = integer::quantize_features(x.detach().contiguous(), shape->layout, q);
    } catch (const Error& e) {
      refusal = e.what();
      codes.reset();
    }
  }
  if (!codes) {
    // The simulated node then runs the backward passes too: count them as what they are.
    execution_log_->fell_back(LayerPass::Forward, refusal);
    if (graph_needed) {
      execution_log_->fell_back(LayerPass::ErrorBackward, refusal);
      execution_log_->fell_back(LayerPass::WeightGradient, refusal);
    }
    return std::nullopt;
  }
  at::Tensor y;
  {
    torch::NoGradGuard no_grad;
    const at::Tensor& b = bias_tensor();
    y = integer::conv_forward(shape->geometry, *codes, *weight_codes, b.defined() ? b.detach() : b, shape->layout)
            .view(shape->output_sizes);
  }
  execution_log_->ran_integer(LayerPass::Forward);
  if (!graph_needed) return y;
  IntegerLayerGraph graph;
  graph.shape = *shape;
  graph.input = std::move(*codes);
  graph.weight_bits = precision.weight_bits();
  graph.gradient = gradient_quantization(precision, noise_step);
  graph.simulated_input = input;
  graph.gradients = gradients();
  graph.log = execution_log_;
  return attach_integer_layer_backward(std::move(y), x, weight_tensor(), bias_tensor(), std::move(graph));
}

at::Tensor QuantizedLayer::forward(const at::Tensor& x, const PrecisionPlan& plan) {
  return forward(x, plan.for_layer(layer_name_), plan.noise_step);
}

at::Tensor QuantizedLayer::forward(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step) {
  if (precision.is_per_sample() && precision.samples() != x.size(0))
    throw Error("layer " + layer_name_ + ": per-sample precision has " + std::to_string(precision.samples()) +
                " entries but the batch has " + std::to_string(x.size(0)) + " samples");
  // Nothing quantized: the plain float op under autograd, exactly as an unquantized layer.
  const bool quantized = !precision.act_full() || precision.weight_bits() != 0 ||
                         (!precision.grad_full() && is_training()) || agrees_ranges(precision);
  at::Tensor y = quantized ? forward_quantized(x, precision, noise_step) : compute(x, weight_tensor());

  if (inject_nan_) {
    at::Tensor fault = torch::zeros({y.numel()}, y.options());
    fault[0] = std::numeric_limits<float>::quiet_NaN();
    y = y + fault.view(y.sizes());
  }
  if (check_finite_output_ && !torch::isfinite(y).all().item<bool>())
    throw Error("layer " + layer_name_ + " (" + to_string(kind()) + ") produced NaN/Inf at precision " +
                precision.describe() +
                "; its input was " + (torch::isfinite(x).all().item<bool>() ? "finite" : "already non-finite"));
  last_macs_per_sample_ = macs_per_sample(x, y);
  if (cost_reporting_) report_cost(x.size(0), precision);
  return y;
}

void QuantizedLayer::report_cost(int64_t batch, const LayerPrecision& precision) {
  if (cost_observer_)
    cost_observer_->on_layer(
        LayerExecution{layer_name_, kind(), last_macs_per_sample_, batch, precision, is_training()});
}

void QuantizedLayer::report_cost_by_option(const at::Tensor& option_counts, const std::vector<Precision>& options) {
  if (cost_observer_)
    cost_observer_->on_layer_by_option(
        LayerExecutionByOption{layer_name_, kind(), last_macs_per_sample_, option_counts, options, is_training()});
}

}  // namespace fractrain
