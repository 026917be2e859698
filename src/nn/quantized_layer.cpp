#include "fractrain/nn/quantized_layer.h"

#include <torch/torch.h>

#include "fractrain/quant/straight_through.h"
#include "fractrain/util/error.h"

namespace fractrain {

QuantizedLayer::QuantizedLayer() {
  running_lo_ = register_buffer("act_running_lo", torch::zeros({1}));
  running_span_ = register_buffer("act_running_span", torch::zeros({1}));
  statistics_seen_ = register_buffer("act_statistics_seen", torch::zeros({1}));
}

bool QuantizedLayer::has_activation_statistics() const { return statistics_seen_.item<float>() > 0; }

QuantRange QuantizedLayer::running_activation_range() const {
  const float lo = running_lo_.item<float>();
  return {lo, lo + running_span_.item<float>()};
}

QuantRange QuantizedLayer::input_range(const at::Tensor& x) {
  if (!is_training() && has_activation_statistics()) return running_activation_range();
  const QuantRange batch = tensor_range(x);
  if (is_training()) {
    torch::NoGradGuard no_grad;
    const float m = settings_.activation_momentum;
    const float span = batch.hi - batch.lo;
    if (!has_activation_statistics()) {
      // The first batch initialises the statistics, so early evaluations do not use a [0, 0] range.
      running_lo_.fill_(batch.lo);
      running_span_.fill_(span);
      statistics_seen_.fill_(1.0f);
    } else {
      running_lo_.mul_(m).add_(batch.lo * (1.0f - m));
      running_span_.mul_(m).add_(span * (1.0f - m));
    }
  }
  return batch;
}

at::Tensor QuantizedLayer::quantize_input(const at::Tensor& x, const LayerPrecision& precision) {
  if (precision.act_full()) return x;
  RECORD_USER_SCOPE("fractrain::quantize_input");
  const QuantRange range = input_range(x.detach());
  QuantizeOptions options;
  options.snap_zero_point = settings_.snap_zero_point;
  at::Tensor quantized;
  {
    torch::NoGradGuard no_grad;
    quantized = precision.is_per_sample()
                    ? fake_quantize_rows(x.detach(), precision.sample_act_bits(), range, options)
                    : fake_quantize(x.detach(), precision.act_bits(), range, options);
  }
  return straight_through(x, quantized);
}

at::Tensor QuantizedLayer::forward(const at::Tensor& x, const PrecisionPlan& plan) {
  return forward(x, plan.for_layer(layer_name_), plan.noise_step);
}

at::Tensor QuantizedLayer::forward(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step) {
  if (precision.is_per_sample() && precision.samples() != x.size(0))
    throw Error("layer " + layer_name_ + ": per-sample precision has " + std::to_string(precision.samples()) +
                " entries but the batch has " + std::to_string(x.size(0)) + " samples");
  const at::Tensor x_q = quantize_input(x, precision);

  const at::Tensor& w = weight_tensor();
  at::Tensor w_q = w;
  if (precision.weight_bits() != 0) {
    RECORD_USER_SCOPE("fractrain::quantize_weight");
    QuantizeOptions options;
    options.snap_zero_point = settings_.snap_zero_point;
    at::Tensor quantized;
    {
      torch::NoGradGuard no_grad;
      quantized = fake_quantize_per_channel(w.detach(), precision.weight_bits(), options);
    }
    w_q = straight_through(w, quantized);
  }

  at::Tensor y = compute(x_q, w_q);

  if (!precision.grad_full() && is_training()) {
    GradientQuantization spec;
    spec.bits = precision.grad_bits();
    if (precision.is_per_sample()) spec.row_bits = precision.sample_grad_bits();
    spec.noise = PhiloxStream{settings_.noise_seed, mix_stream(static_cast<uint64_t>(layer_index_), noise_step)};
    spec.snap_zero_point = settings_.snap_zero_point;
    y = quantize_gradient_in_backward(y, spec);
  }

  if (cost_observer_)
    cost_observer_->on_layer(
        LayerExecution{layer_name_, kind(), macs_per_sample(x, y), x.size(0), precision, is_training()});
  return y;
}

}  // namespace fractrain
