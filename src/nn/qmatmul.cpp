#include "fractrain/nn/qmatmul.h"

#include <ATen/ATen.h>

#include "fractrain/integer/integer_support.h"
#include "fractrain/quant/device_quantize.h"
#include "fractrain/quant/straight_through.h"
#include "fractrain/util/error.h"
#include "integer_layer_backward.h"  // integer_width_refusal
#include "integer_matmul_backward.h"

namespace fractrain {
namespace {

// Fake-quantized in the forward pass, gradient passed straight through.
// In training the range is the whole batch's (agreed across data-parallel ranks; `agreement` null in one process);
// `range`, where given, is that range already taken (integer execution takes it before it decides).
at::Tensor quantize_operand(const at::Tensor& x, int bits, bool snap_zero_point, RangeAgreement* agreement,
                            const std::optional<QuantRange>& range = std::nullopt) {
  if (bits == 0) return x;
  const at::Tensor value = x.detach();
  at::Tensor q;
  if (device_quant::applies(value) && !agreement && !range) {
    q = device_quant::quantize_over_own_range(value.contiguous(), bits, snap_zero_point);
  } else {
    QuantizeOptions options;
    options.snap_zero_point = snap_zero_point;
    q = fake_quantize(value.contiguous(), bits, range ? *range : agreed_range(value, agreement), options);
  }
  return x.requires_grad() ? straight_through(x, q) : q;
}

// Integer execution runs here: CPU float operands.
bool integer_candidates(const at::Tensor& a, const at::Tensor& b) {
  return a.device().is_cpu() && b.device().is_cpu() && a.scalar_type() == at::kFloat &&
         b.scalar_type() == at::kFloat;
}

}  // namespace

GradientQuantization QMatmul::gradient_quantization(const LayerPrecision& precision, uint64_t noise_step) const {
  GradientQuantization spec;
  spec.bits = precision.grad_bits();
  spec.noise = PhiloxStream{settings_.noise_seed, mix_stream(static_cast<uint64_t>(layer_index_), noise_step)};
  spec.noise_step = settings_.noise_step;
  spec.noise_layer = static_cast<uint64_t>(layer_index_);
  spec.snap_zero_point = settings_.snap_zero_point;
  spec.range_agreement = settings_.range_agreement;
  spec.first_sample = settings_.first_sample;
  return spec;
}

std::array<std::string, 3> QMatmul::integer_passes(const LayerPrecision& precision) const {
  std::string forward = integer_support().available ? std::string() : integer_support().detail;
  if (forward.empty() && precision.is_per_sample()) forward = "per-sample (DFQ) precisions are not supported here";
  if (forward.empty()) forward = integer_width_refusal({precision.act_bits()}, "left operand");
  if (forward.empty()) forward = integer_width_refusal({precision.weight_bits()}, "right operand");
  const std::string backward = !forward.empty() ? forward : integer_width_refusal({precision.grad_bits()}, "gradient");
  std::array<std::string, 3> passes;
  passes[0] = forward.empty() ? "integer" : "simulated (" + forward + ")";
  passes[1] = passes[2] = backward.empty() ? "integer" : "simulated (" + backward + ")";
  return passes;
}

std::optional<at::Tensor> QMatmul::forward_integer(const at::Tensor& a, const at::Tensor& b,
                                                   const LayerPrecision& precision,
                                                   const std::optional<QuantRange>& a_range,
                                                   const std::optional<QuantRange>& b_range, uint64_t noise_step) {
  const bool graph_needed = at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad());
  std::string refusal = integer_support().available ? std::string() : integer_support().detail;
  if (refusal.empty()) refusal = integer_width_refusal({precision.act_bits()}, "left operand");
  if (refusal.empty()) refusal = integer_width_refusal({precision.weight_bits()}, "right operand");
  IntegerMatmulGraph graph;
  if (refusal.empty()) {
    try {
      // Both widths are 1..8 here, so both ranges were taken.
      graph.left = integer::quantize_matrix(a.detach(), precision.act_bits(), *a_range);
      graph.right = integer::quantize_matrix(b.detach(), precision.weight_bits(), *b_range);
    } catch (const Error& e) {
      refusal = e.what();
    }
  }
  if (!refusal.empty()) {
    execution_log_->fell_back(LayerPass::Forward, refusal);
    if (graph_needed) {
      execution_log_->fell_back(LayerPass::ErrorBackward, refusal);
      execution_log_->fell_back(LayerPass::WeightGradient, refusal);
    }
    return std::nullopt;
  }
  std::vector<int64_t> sizes = a.sizes().vec();
  sizes.back() = b.size(-1);
  at::Tensor y = integer::dot_products(graph.left, integer::transposed(graph.right)).view(sizes);
  execution_log_->ran_integer(LayerPass::Forward);
  if (!graph_needed) return y;
  graph.left_range = *a_range;
  graph.right_range = *b_range;
  if (is_training() && precision.grad_bits() != 0) graph.gradient = gradient_quantization(precision, noise_step);
  graph.log = execution_log_;
  return attach_integer_matmul_backward(std::move(y), a, b, std::move(graph));
}

at::Tensor QMatmul::forward(const at::Tensor& a, const at::Tensor& b, const PrecisionPlan& plan) {
  const LayerPrecision& precision = plan.for_layer(layer_name_);
  if (precision.is_per_sample())
    throw Error("layer " + layer_name_ + ": per-sample (DFQ) precisions are not supported for attention matmuls");
  if (a.dim() < 3 || b.dim() != a.dim() || a.size(-1) != b.size(-2) || a.size(0) != b.size(0))
    throw Error("layer " + layer_name_ + ": cannot multiply " + std::to_string(a.dim()) + "-D by " +
                std::to_string(b.dim()) + "-D operands of mismatched shapes");
  RangeAgreement* agreement = is_training() ? settings_.range_agreement.get() : nullptr;
  std::optional<at::Tensor> integer_y;
  std::optional<QuantRange> a_range, b_range;
  if (settings_.execution == ExecutionMode::Integer && integer_candidates(a, b)) {
    // The ranges first (a collective under data parallelism, so every rank takes them whichever way it goes).
    if (precision.act_bits() != 0) a_range = agreed_range(a.detach(), agreement);
    if (precision.weight_bits() != 0) b_range = agreed_range(b.detach(), agreement);
    integer_y = forward_integer(a, b, precision, a_range, b_range, plan.noise_step);
  }
  at::Tensor y;
  if (integer_y) {
    y = std::move(*integer_y);
  } else {
    const at::Tensor qa = quantize_operand(a, precision.act_bits(), settings_.snap_zero_point, agreement, a_range);
    const at::Tensor qb = quantize_operand(b, precision.weight_bits(), settings_.snap_zero_point, agreement, b_range);
    y = at::matmul(qa, qb);
    if (is_training() && precision.grad_bits() != 0 && y.requires_grad())
      y = quantize_gradient_in_backward(y, gradient_quantization(precision, plan.noise_step));
  }
  const int64_t batch = a.size(0);
  // Every output element sums K products: M x N x K per matrix, times the leading (head) dimensions.
  macs_per_sample_ = y.numel() / batch * a.size(-1);
  operand_elements_ = (a.numel() + b.numel()) / batch;
  output_elements_ = y.numel() / batch;
  if (cost_observer_)
    cost_observer_->on_layer(
        LayerExecution{layer_name_, LayerKind::Attention, macs_per_sample_, batch, precision, is_training()});
  return y;
}

}  // namespace fractrain
