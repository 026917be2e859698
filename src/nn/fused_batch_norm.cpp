#include "fractrain/nn/fused_batch_norm.h"

#include <ATen/record_function.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>

#include <array>
#include <cmath>

#include "fractrain/nn/batch_norm_kernels.h"
#include "fractrain/quant/range_memo.h"
#include "fractrain/util/error.h"
#include "batch_norm_gradient.h"

namespace fractrain {
namespace {

using torch::autograd::variable_list;
namespace bn_kernel = batch_norm_kernel;

const float* float_data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

// Per channel, from the forward: the batch's mean, biased variance and 1 / sqrt(var + eps) in float64, and the
// normalisation x * alpha + beta in float32 (the backward recomputes the ReLU's input with the very same
// coefficients).
struct ChannelNormalisation {
  at::Tensor mean, var, invstd, alpha, beta;
};

ChannelNormalisation normalisation_of(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                      double eps) {
  const auto shape = bn_kernel::nchw_shape(x);
  const int64_t channels = shape.channels;
  ChannelNormalisation n;
  n.mean = at::empty({channels}, x.options().dtype(at::kDouble));
  n.invstd = at::empty_like(n.mean);
  n.alpha = at::empty({channels}, x.options());
  n.beta = at::empty_like(n.alpha);
  n.var = at::empty_like(n.mean);
  bn_kernel::channel_moments(x.data_ptr<float>(), shape, n.mean.data_ptr<double>(), n.var.data_ptr<double>());
  n.var.div_(static_cast<double>(shape.samples * shape.plane));
  const float* w = float_data_or_null(weight);
  const float* b = float_data_or_null(bias);
  const double* mean = n.mean.data_ptr<double>();
  double* invstd = n.invstd.data_ptr<double>();
  for (int64_t c = 0; c < channels; ++c) {
    invstd[c] = 1.0 / std::sqrt(n.var.data_ptr<double>()[c] + eps);
    const double gain = invstd[c] * (w ? w[c] : 1.0);
    n.alpha.data_ptr<float>()[c] = static_cast<float>(gain);
    n.beta.data_ptr<float>()[c] = static_cast<float>((b ? b[c] : 0.0) - mean[c] * gain);
  }
  return n;
}

// torch's running-statistics update: running = (1 - factor) running + factor batch, with the unbiased variance.
void update_running_statistics(const ChannelNormalisation& n, int64_t count, const at::Tensor& running_mean,
                               const at::Tensor& running_var, double factor) {
  at::NoGradGuard no_grad;
  if (running_mean.defined())
    running_mean.copy_(running_mean.to(at::kDouble) * (1.0 - factor) + n.mean * factor);
  if (running_var.defined()) {
    const double unbiased = static_cast<double>(count) / static_cast<double>(count - 1);
    running_var.copy_(running_var.to(at::kDouble) * (1.0 - factor) + n.var * (unbiased * factor));
  }
}

class FusedBatchNormReluBackward : public torch::autograd::Node {
 public:
  variable_list apply(variable_list&& grads) override {
    if (at::GradMode::is_enabled())
      throw Error("fused BatchNorm + ReLU does not support double backward (backward with create_graph): set "
                  "train.fused_batch_norm = false");
    const at::Tensor x = input_.unpack();
    const at::Tensor weight_tensor = weight_.unpack();
    const at::Tensor weight = weight_tensor.defined() ? weight_tensor.contiguous() : weight_tensor;
    const at::Tensor dy = grads[0].defined() ? grads[0].contiguous() : at::zeros_like(x);
    const auto shape = bn_kernel::nchw_shape(x);
    const int64_t channels = shape.channels;
    at::Tensor sum_g = at::empty({channels}, x.options().dtype(at::kDouble)), sum_gc = at::empty_like(sum_g);
    const double* mean = n_.mean.data_ptr<double>();
    at::Tensor g;  // the gradient behind the ReLU, materialised only when a residual needs it
    const at::Tensor scale = scale_.unpack();
    at::Tensor scale_terms;  // [N, C]: the scale's gradient before the sum over channels
    if (with_residual_) {
      const at::Tensor y = output_.unpack(shared_from_this());
      g = at::empty_like(x);
      bn_kernel::OutputScale output_scale;
      if (scale.defined()) {
        output_scale.values = scale.data_ptr<float>();
        if (task_should_compute_output(4)) {
          scale_terms = at::empty({shape.samples, channels}, sum_g.options());
          output_scale.alpha = n_.alpha.data_ptr<float>();
          output_scale.beta = n_.beta.data_ptr<float>();
          output_scale.gradient_terms = scale_terms.data_ptr<double>();
        }
      }
      bn_kernel::masked_gradient_sums(dy.data_ptr<float>(), y.data_ptr<float>(), x.data_ptr<float>(), shape, mean,
                                      output_scale, g.data_ptr<float>(), sum_g.data_ptr<double>(),
                                      sum_gc.data_ptr<double>());
    } else {
      bn_kernel::relu_gradient_sums(dy.data_ptr<float>(), x.data_ptr<float>(), shape, n_.alpha.data_ptr<float>(),
                                 n_.beta.data_ptr<float>(), mean, sum_g.data_ptr<double>(),
                                 sum_gc.data_ptr<double>());
    }
    at::Tensor sum_g_xhat = sum_gc * n_.invstd;  // dweight: sum of g * x_hat

    variable_list out(5);
    if (task_should_compute_output(0)) {
      // dx = a g + b x + k per channel (coefficients in float64, then float32).
      const double count = static_cast<double>(shape.samples * shape.plane);
      const float* w = float_data_or_null(weight);
      const double* invstd = n_.invstd.data_ptr<double>();
      const double* channel_sum_g = sum_g.data_ptr<double>();
      const double* channel_sum_g_xhat = sum_g_xhat.data_ptr<double>();
      at::Tensor coefficients = at::empty({3, channels}, x.options());
      float* a = coefficients[0].data_ptr<float>();
      float* b = coefficients[1].data_ptr<float>();
      float* k = coefficients[2].data_ptr<float>();
      for (int64_t c = 0; c < channels; ++c) {
        const std::array<double, 3> abk =
            input_gradient_coefficients(invstd[c], mean[c], w ? invstd[c] * w[c] : invstd[c], channel_sum_g[c],
                                        channel_sum_g_xhat[c], count);
        a[c] = static_cast<float>(abk[0]);
        b[c] = static_cast<float>(abk[1]);
        k[c] = static_cast<float>(abk[2]);
      }
      at::Tensor dx = at::empty_like(x);
      kernel::MinMax written;  // dx's range: the quantized convolution before this BatchNorm quantizes dx
      if (with_residual_)
        bn_kernel::scaled_affine_combination(g.data_ptr<float>(), scale.defined() ? scale.data_ptr<float>() : nullptr,
                                             x.data_ptr<float>(), shape, a, b, k, dx.data_ptr<float>(), &written);
      else
        bn_kernel::relu_affine_combination(dy.data_ptr<float>(), x.data_ptr<float>(), shape, n_.alpha.data_ptr<float>(),
                                        n_.beta.data_ptr<float>(), a, b, k, dx.data_ptr<float>(), &written);
      range_memo::remember(dx, {written.lo, written.hi});
      out[0] = dx;
    }
    if (weight.defined() && task_should_compute_output(1)) out[1] = sum_g_xhat.to(weight.scalar_type());
    if (task_should_compute_output(2)) out[2] = sum_g.to(x.scalar_type());
    if (with_residual_ && task_should_compute_output(3)) out[3] = g;
    if (scale_terms.defined()) out[4] = scale_terms.sum(1).to(at::kFloat);
    return out;
  }
  std::string name() const override { return "FusedBatchNormReluBackward"; }
  void release_variables() override {
    input_.reset_data();
    weight_.reset_data();
    output_.reset_data();
    scale_.reset_data();
  }

  torch::autograd::SavedVariable input_, weight_, output_;  // output_: only with a residual (the ReLU's mask)
  torch::autograd::SavedVariable scale_;                    // per sample, or undefined
  ChannelNormalisation n_;
  bool with_residual_ = false;
};

bool needs_gradient(const at::Tensor& t) { return t.defined() && t.requires_grad(); }

}  // namespace

bool fused_batch_norm_relu_applies(const at::Tensor& input, const at::Tensor& residual, const at::Tensor& scale) {
  const bool input_fits = input.dim() == 4 && input.scalar_type() == at::kFloat && input.is_cpu() &&
                          input.is_contiguous() && input.size(0) * input.size(2) * input.size(3) > 1;
  if (!input_fits || !residual.defined()) return input_fits && !scale.defined();
  const bool residual_fits =
      residual.sizes() == input.sizes() && residual.scalar_type() == at::kFloat && residual.is_cpu();
  if (!residual_fits || !scale.defined()) return residual_fits;
  return scale.dim() == 1 && scale.size(0) == input.size(0) && scale.scalar_type() == at::kFloat && scale.is_cpu();
}

at::Tensor fused_batch_norm_relu(const at::Tensor& input, const at::Tensor& residual, const at::Tensor& weight,
                                 const at::Tensor& bias, const at::Tensor& running_mean,
                                 const at::Tensor& running_var, double factor, double eps, const at::Tensor& scale) {
  if (!fused_batch_norm_relu_applies(input, residual, scale))
    throw Error("fused_batch_norm_relu: expects a contiguous float32 NCHW CPU input with more than one value per "
                "channel, a residual of the same sizes and a float32 scale per sample with the residual (check "
                "fused_batch_norm_relu_applies first)");
  RECORD_USER_SCOPE("fractrain::fused_batch_norm_relu");
  const at::Tensor x = input.detach();
  const at::Tensor r = residual.defined() ? residual.detach().contiguous() : at::Tensor();
  const at::Tensor w = weight.defined() ? weight.detach().contiguous() : at::Tensor();
  const at::Tensor b = bias.defined() ? bias.detach().contiguous() : at::Tensor();
  const at::Tensor k = scale.defined() ? scale.detach().contiguous() : at::Tensor();

  ChannelNormalisation n = normalisation_of(x, w, b, eps);
  at::Tensor output = at::empty_like(x);
  kernel::MinMax written;  // the output's range: the quantized layers after this one quantize it
  bn_kernel::channel_affine_relu(x.data_ptr<float>(), float_data_or_null(r), float_data_or_null(k),
                                 bn_kernel::nchw_shape(x), n.alpha.data_ptr<float>(), n.beta.data_ptr<float>(),
                                 output.data_ptr<float>(), &written);
  range_memo::remember(output, {written.lo, written.hi});
  update_running_statistics(n, x.size(0) * x.size(2) * x.size(3), running_mean, running_var, factor);

  const bool needs_grad = at::GradMode::is_enabled() && (needs_gradient(input) || needs_gradient(weight) ||
                                                            needs_gradient(bias) || needs_gradient(residual) ||
                                                            needs_gradient(scale));
  if (needs_grad) {
    auto node =
        std::shared_ptr<FusedBatchNormReluBackward>(new FusedBatchNormReluBackward(), torch::autograd::deleteNode);
    node->set_next_edges(torch::autograd::collect_next_edges(input, weight, bias, residual, scale));
    node->input_ = torch::autograd::SavedVariable(input, false);
    node->weight_ = torch::autograd::SavedVariable(weight, false);
    // The scale's values (contiguous, as the kernels read them); its gradient goes to `scale`'s edge.
    node->scale_ = torch::autograd::SavedVariable(k, false);
    node->n_ = std::move(n);
    node->with_residual_ = residual.defined();
    torch::autograd::set_history(output, node);
    if (node->with_residual_) node->output_ = torch::autograd::SavedVariable(output, true);
  }
  return output;
}

}  // namespace fractrain
