#include "fractrain/nn/qmatmul.h"

#include <ATen/ATen.h>

#include "fractrain/quant/device_quantize.h"
#include "fractrain/quant/straight_through.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

// Fake-quantized in the forward pass, gradient passed straight through.
// In training the range is the whole batch's (agreed across data-parallel ranks; `agreement` null in one process).
at::Tensor quantize_operand(const at::Tensor& x, int bits, bool snap_zero_point, RangeAgreement* agreement) {
  if (bits == 0) return x;
  const at::Tensor value = x.detach();
  at::Tensor q;
  if (device_quant::applies(value) && !agreement) {
    q = device_quant::quantize_over_own_range(value.contiguous(), bits, snap_zero_point);
  } else {
    QuantizeOptions options;
    options.snap_zero_point = snap_zero_point;
    q = fake_quantize(value.contiguous(), bits, agreed_range(value, agreement), options);
  }
  return x.requires_grad() ? straight_through(x, q) : q;
}

}  // namespace

at::Tensor QMatmul::forward(const at::Tensor& a, const at::Tensor& b, const PrecisionPlan& plan) {
  const LayerPrecision& precision = plan.for_layer(layer_name_);
  if (precision.is_per_sample())
    throw Error("layer " + layer_name_ + ": per-sample (DFQ) precisions are not supported for attention matmuls");
  if (a.dim() < 3 || b.dim() != a.dim() || a.size(-1) != b.size(-2) || a.size(0) != b.size(0))
    throw Error("layer " + layer_name_ + ": cannot multiply " + std::to_string(a.dim()) + "-D by " +
                std::to_string(b.dim()) + "-D operands of mismatched shapes");
  RangeAgreement* agreement = is_training() ? settings_.range_agreement.get() : nullptr;
  const at::Tensor qa = quantize_operand(a, precision.act_bits(), settings_.snap_zero_point, agreement);
  const at::Tensor qb = quantize_operand(b, precision.weight_bits(), settings_.snap_zero_point, agreement);
  at::Tensor y = at::matmul(qa, qb);
  if (is_training() && precision.grad_bits() != 0 && y.requires_grad()) {
    GradientQuantization spec;
    spec.bits = precision.grad_bits();
    spec.noise = PhiloxStream{settings_.noise_seed, mix_stream(static_cast<uint64_t>(layer_index_), plan.noise_step)};
    spec.noise_step = settings_.noise_step;
    spec.noise_layer = static_cast<uint64_t>(layer_index_);
    spec.snap_zero_point = settings_.snap_zero_point;
    spec.range_agreement = settings_.range_agreement;
    spec.first_sample = settings_.first_sample;
    y = quantize_gradient_in_backward(y, spec);
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
