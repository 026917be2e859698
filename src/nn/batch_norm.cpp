#include "fractrain/nn/batch_norm.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/nn/functional/batchnorm.h>
#include <torch/nn/init.h>
#include <torch/torch.h>

#include <array>
#include <sstream>

#include "fractrain/nn/batch_norm_kernels.h"
#include "fractrain/nn/fused_batch_norm.h"
#include "fractrain/util/error.h"
#include "batch_norm_gradient.h"

namespace fractrain {
namespace {

using torch::autograd::variable_list;

std::string sizes_of(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// Per-channel view for broadcasting against NCHW.
at::Tensor channel_view(const at::Tensor& per_channel) { return per_channel.view({1, -1, 1, 1}); }

// The fast passes (batch_norm_kernels.h) take contiguous float32 NCHW; other types use torch's ops.
bool fast_passes_apply(const at::Tensor& x) { return x.scalar_type() == at::kFloat && x.is_contiguous() && x.is_cpu(); }

// This rank's per-channel mean and biased variance, float64.
std::pair<at::Tensor, at::Tensor> local_mean_and_variance(const at::Tensor& x) {
  if (!fast_passes_apply(x)) {
    const auto [var, mean] = at::var_mean(x.detach(), {0, 2, 3}, /*unbiased=*/false);
    return {mean.to(at::kDouble), var.to(at::kDouble)};
  }
  const auto shape = batch_norm_kernel::nchw_shape(x);
  at::Tensor mean = at::empty({shape.channels}, x.options().dtype(at::kDouble));
  at::Tensor m2 = at::empty_like(mean);
  batch_norm_kernel::channel_moments(x.data_ptr<float>(), shape, mean.data_ptr<double>(), m2.data_ptr<double>());
  return {mean, m2 / static_cast<double>(shape.samples * shape.plane)};
}

// This rank's [sum(dy) | sum(dy * x_hat)] per channel, float64, x_hat = (x - mean) invstd.
at::Tensor local_gradient_sums(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& mean,
                               const at::Tensor& invstd, double eps) {
  const int64_t channels = x.size(1);
  at::Tensor sums = at::zeros({2, channels}, x.options().dtype(at::kDouble));
  if (x.numel() == 0) return sums;
  if (!fast_passes_apply(x) || !fast_passes_apply(dy)) {
    // torch's fused backward: given the global mean and invstd, its dweight and dbias are exactly
    // sum(dy * x_hat) and sum(dy).
    const auto local = at::native_batch_norm_backward(dy, x, /*weight=*/at::Tensor(), at::Tensor(), at::Tensor(),
                                                      mean.to(x.scalar_type()), invstd.to(x.scalar_type()),
                                                      /*train=*/true, eps, {false, true, true});
    sums[0].copy_(std::get<2>(local));
    sums[1].copy_(std::get<1>(local));
    return sums;
  }
  const at::Tensor centred = at::empty({channels}, sums.options());
  batch_norm_kernel::gradient_sums(dy.data_ptr<float>(), x.data_ptr<float>(), batch_norm_kernel::nchw_shape(x),
                                   mean.contiguous().data_ptr<double>(), sums[0].data_ptr<double>(),
                                   centred.data_ptr<double>());
  sums[1].copy_(centred * invstd);
  return sums;
}

// a dy + b x + c with per-channel a, b, c (float64, applied in the input's type).
at::Tensor channel_affine_combination(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& a,
                                      const at::Tensor& b, const at::Tensor& c) {
  const auto type = x.scalar_type();
  if (!fast_passes_apply(x) || !fast_passes_apply(dy)) {
    at::Tensor out = dy * channel_view(a.to(type));
    out.addcmul_(x, channel_view(b.to(type)));
    return out.add_(channel_view(c.to(type)));
  }
  const at::Tensor af = a.to(type).contiguous(), bf = b.to(type).contiguous(), cf = c.to(type).contiguous();
  at::Tensor out = at::empty_like(x);
  batch_norm_kernel::channel_affine_combination(dy.data_ptr<float>(), x.data_ptr<float>(),
                                                batch_norm_kernel::nchw_shape(x), af.data_ptr<float>(),
                                                bf.data_ptr<float>(), cf.data_ptr<float>(), out.data_ptr<float>());
  return out;
}

// dx of one BatchNorm over the global batch needs the global sums of dy and dy * x_hat; dweight and dbias are
// this rank's sums (see the header for why they are not reduced here). Both passes over the data are the fast
// ones for float32 (batch_norm_kernels.h): a ResNet has a BatchNorm after every convolution.
class SyncBatchNormBackward : public torch::autograd::Node {
 public:
  variable_list apply(variable_list&& grads) override {
    const at::Tensor input = input_.unpack();
    const at::Tensor weight = weight_.unpack();
    at::Tensor dy = grads[0].defined() ? grads[0].contiguous() : at::zeros_like(input);

    // [sum(dy) | sum(dy * x_hat)], this rank's, in float64 for the allreduce.
    at::Tensor sums = local_gradient_sums(dy, input, mean_, invstd_, eps_);
    const at::Tensor local = sums.clone();
    communicator_->all_reduce({sums}, ReduceOp::Sum, "BatchNorm backward sums");

    variable_list out(3);
    if (should_compute_output(0)) {
      // dx = a dy + b x + c per channel (coefficients in float64, then the input's type).
      const at::Tensor gain = weight.defined() ? invstd_ * weight.to(at::kDouble) : invstd_;
      const std::array<at::Tensor, 3> abc = input_gradient_coefficients(invstd_, mean_, gain, sums[0], sums[1], count_);
      out[0] = channel_affine_combination(dy, input, abc[0], abc[1], abc[2]);
    }
    if (weight.defined() && should_compute_output(1)) out[1] = local[1].to(weight.scalar_type());
    if (should_compute_output(2) && bias_type_ != at::ScalarType::Undefined) out[2] = local[0].to(bias_type_);
    return out;
  }
  std::string name() const override { return "SyncBatchNormBackward"; }
  void release_variables() override {
    input_.reset_data();
    weight_.reset_data();
  }

  torch::autograd::SavedVariable input_, weight_;
  at::Tensor mean_, invstd_;  // float64, per channel, of the global batch
  double count_ = 0;          // samples x height x width over all ranks
  double eps_ = 1e-5;
  at::ScalarType bias_type_ = at::ScalarType::Undefined;
  std::shared_ptr<Communicator> communicator_;
};

// Calls visit(bn) for every SyncBatchNorm2d in `model`, the model itself included; returns how many.
template <class Visit>
int for_each_batch_norm(torch::nn::Module& model, const Visit& visit) {
  int count = 0;
  auto each = [&](torch::nn::Module& module) {
    if (auto* bn = dynamic_cast<SyncBatchNorm2d*>(&module)) {
      visit(*bn);
      ++count;
    }
  };
  each(model);
  for (const auto& child : model.modules(/*include_self=*/false)) each(*child);
  return count;
}

// The channel count the layer was built for, checked where the input reaches its own passes.
void check_channels(const at::Tensor& input, int64_t channels) {
  if (input.size(1) != channels)
    throw Error("SyncBatchNorm2d: input has " + std::to_string(input.size(1)) + " channels, the layer " +
                std::to_string(channels) + " (input sizes " + sizes_of(input) + ")");
}

}  // namespace

SyncBatchNorm2d::SyncBatchNorm2d(const torch::nn::BatchNormOptions& options) : options_(options) {
  // Registration exactly as torch::nn::BatchNorm2d does it: same names, same order, same initial values.
  const int64_t channels = options_.num_features();
  if (options_.affine()) {
    weight = register_parameter("weight", torch::empty({channels}));
    bias = register_parameter("bias", torch::empty({channels}));
  } else {
    weight = register_parameter("weight", at::Tensor(), /*requires_grad=*/false);
    bias = register_parameter("bias", at::Tensor(), /*requires_grad=*/false);
  }
  if (options_.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({channels}));
    running_var = register_buffer("running_var", torch::ones({channels}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::tensor(0, torch::dtype(torch::kLong)));
  } else {
    running_mean = register_buffer("running_mean", at::Tensor());
    running_var = register_buffer("running_var", at::Tensor());
    num_batches_tracked = register_buffer("num_batches_tracked", at::Tensor());
  }
  reset_running_stats();
  if (options_.affine()) {
    torch::nn::init::ones_(weight);
    torch::nn::init::zeros_(bias);
  }
}

void SyncBatchNorm2d::reset_running_stats() {
  if (!options_.track_running_stats()) return;
  torch::NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1);
  num_batches_tracked.zero_();
}

double SyncBatchNorm2d::running_average_factor() {
  // Mirrors torch::nn::BatchNormImplBase::forward, including when num_batches_tracked is counted.
  double factor = options_.momentum() ? *options_.momentum() : 0.0;
  if (is_training() && options_.track_running_stats() && num_batches_tracked.defined()) {
    num_batches_tracked += 1;
    factor = options_.momentum() ? *options_.momentum() : 1.0 / num_batches_tracked.item<double>();
  }
  return factor;
}

at::Tensor SyncBatchNorm2d::forward(const at::Tensor& input) {
  if (input.dim() != 4)
    throw Error("SyncBatchNorm2d: expected a 4-D input (N, C, H, W), got sizes " + sizes_of(input));
  const double factor = running_average_factor();
  if (is_training() && communicator_ && communicator_->distributed()) return synchronised_forward(input, factor);
  return torch::nn::functional::detail::batch_norm(input, running_mean, running_var, weight, bias,
                                                   is_training() || !options_.track_running_stats(), factor,
                                                   options_.eps());
}

at::Tensor SyncBatchNorm2d::forward_relu(const at::Tensor& input, const at::Tensor& residual, const at::Tensor& scale) {
  if (scale.defined() && !residual.defined())
    throw Error("SyncBatchNorm2d::forward_relu: a per-sample scale needs a residual");
  const bool distributed = communicator_ && communicator_->distributed();
  if (fused_kernels_ && is_training() && !distributed && fused_batch_norm_relu_applies(input, residual, scale)) {
    check_channels(input, options_.num_features());
    const double factor = running_average_factor();
    const bool track = options_.track_running_stats();
    return fused_batch_norm_relu(input, residual, weight, bias, track ? running_mean : at::Tensor(),
                                 track ? running_var : at::Tensor(), factor, options_.eps(), scale);
  }
  at::Tensor out = forward(input);
  if (scale.defined()) out = scale.view({-1, 1, 1, 1}) * out;
  return torch::relu(residual.defined() ? out + residual : out);
}

at::Tensor SyncBatchNorm2d::forward(const at::Tensor& input, const at::Tensor& runs) {
  if (!runs.defined() || !is_training()) return forward(input);
  if (input.dim() != 4)
    throw Error("SyncBatchNorm2d: expected a 4-D input (N, C, H, W), got sizes " + sizes_of(input));
  if (runs.dim() != 1 || runs.size(0) != input.size(0))
    throw Error("SyncBatchNorm2d: the running samples must be one flag per sample (" +
                std::to_string(input.size(0)) + "), got sizes " + sizes_of(runs));
  if (communicator_ && communicator_->distributed())
    throw Error("SyncBatchNorm2d: statistics over the running samples (DFQ's masked execution) are not synchronised "
                "across ranks; data-parallel DFQ runs dfq.execution = \"mixed\"");
  const at::Tensor flags = runs.to(input.scalar_type());
  const at::Tensor row = flags.view({-1, 1, 1, 1});
  const at::Tensor samples = flags.sum();
  const at::Tensor count = samples * static_cast<double>(input.size(2) * input.size(3));  // values per channel
  const at::Tensor divisor = count.clamp_min(1.0);
  const at::Tensor mean = (input * row).sum({0, 2, 3}) / divisor;
  const at::Tensor centred = input - channel_view(mean);
  const at::Tensor var = (centred * centred * row).sum({0, 2, 3}) / divisor;
  at::Tensor output = centred * channel_view((var + options_.eps()).rsqrt());
  if (weight.defined()) output = output * channel_view(weight) + channel_view(bias);

  if (options_.track_running_stats()) {
    // As torch's update (unbiased variance, momentum or cumulative average), where some sample ran.
    torch::NoGradGuard no_grad;
    const at::Tensor ran = samples > 0;
    num_batches_tracked.add_(ran.to(at::kLong));
    const at::Tensor factor =
        options_.momentum() ? at::full({}, *options_.momentum(), count.options())
                            : 1.0 / num_batches_tracked.clamp_min(1).to(count.scalar_type());
    const at::Tensor unbiased = var.detach() * (count / (count - 1.0).clamp_min(1.0));
    running_mean.copy_(at::where(ran, running_mean * (1.0 - factor) + mean.detach() * factor, running_mean));
    running_var.copy_(at::where(ran, running_var * (1.0 - factor) + unbiased * factor, running_var));
  }
  return output;
}

at::Tensor SyncBatchNorm2d::synchronised_forward(const at::Tensor& input, double factor) {
  const int64_t channels = options_.num_features();
  check_channels(input, channels);
  const at::Tensor x = input.contiguous();

  // One allreduce of [sum | sum of squares | count], in float64. The local mean and variance come from two
  // passes (mean, then squared deviations; batch_norm_kernels.h); sum = n mean and sum of squares =
  // n (var + mean^2) in float64 keep both the different reduction order and the cancellation in
  // E[x^2] - E[x]^2 far below float32 rounding of the normalised output.
  at::Tensor stats = at::zeros({2 * channels + 1}, x.options().dtype(at::kDouble));
  const double local_count = static_cast<double>(x.numel() / std::max<int64_t>(1, channels));
  if (x.numel() > 0) {
    torch::NoGradGuard no_grad;
    const auto [mean64, var64] = local_mean_and_variance(x);
    stats.slice(0, 0, channels).copy_(mean64 * local_count);
    stats.slice(0, channels, 2 * channels).copy_((var64 + mean64 * mean64) * local_count);
  }
  stats[2 * channels].fill_(local_count);
  communicator_->all_reduce({stats}, ReduceOp::Sum, "BatchNorm statistics");
  const double count = stats[2 * channels].item<double>();
  if (count <= 1)
    throw Error("SyncBatchNorm2d: expected more than 1 value per channel over all ranks when training, got " +
                std::to_string(static_cast<int64_t>(count)) + " (this rank's input sizes " + sizes_of(input) +
                ", " + std::to_string(communicator_->world_size()) + " ranks)");
  const at::Tensor mean = stats.slice(0, 0, channels) / count;
  const at::Tensor var = (stats.slice(0, channels, 2 * channels) / count - mean * mean).clamp_min(0.0);
  const at::Tensor invstd = (var + options_.eps()).rsqrt();

  at::Tensor output;
  {
    // The normalisation itself is torch's eval-mode kernel with the global statistics as "running" ones.
    torch::NoGradGuard no_grad;
    const at::Tensor w = weight.defined() ? weight.detach() : at::Tensor();
    const at::Tensor b = bias.defined() ? bias.detach() : at::Tensor();
    output = x.numel() == 0 ? at::empty_like(x)
                            : torch::batch_norm(x.detach(), w, b, mean.to(x.scalar_type()), var.to(x.scalar_type()),
                                                /*training=*/false, 0.0, options_.eps(),
                                                at::globalContext().userEnabledCuDNN());
    if (options_.track_running_stats()) {
      const at::Tensor unbiased = var * (count / (count - 1));
      running_mean.copy_(running_mean.to(at::kDouble) * (1 - factor) + mean * factor);
      running_var.copy_(running_var.to(at::kDouble) * (1 - factor) + unbiased * factor);
    }
  }

  const bool needs_grad = torch::GradMode::is_enabled() && (x.requires_grad() ||
                                                            (weight.defined() && weight.requires_grad()) ||
                                                            (bias.defined() && bias.requires_grad()));
  if (needs_grad) {
    auto node = std::shared_ptr<SyncBatchNormBackward>(new SyncBatchNormBackward(), torch::autograd::deleteNode);
    node->set_next_edges(torch::autograd::collect_next_edges(x, weight, bias));
    node->input_ = torch::autograd::SavedVariable(x, false);
    node->weight_ = torch::autograd::SavedVariable(weight, false);
    node->mean_ = mean;
    node->invstd_ = invstd;
    node->count_ = count;
    node->eps_ = options_.eps();
    node->bias_type_ = bias.defined() ? bias.scalar_type() : at::ScalarType::Undefined;
    node->communicator_ = communicator_;
    torch::autograd::set_history(output, node);
  }
  return output;
}

void SyncBatchNorm2d::pretty_print(std::ostream& stream) const {
  stream << "fractrain::SyncBatchNorm2d(" << options_.num_features() << ", eps=" << options_.eps()
         << ", momentum=";
  if (options_.momentum())
    stream << *options_.momentum();
  else
    stream << "None";
  stream << ", affine=" << options_.affine() << ", track_running_stats=" << options_.track_running_stats()
         << (communicator_ && communicator_->distributed() ? ", synchronised" : "") << ")";
}

int set_batch_norm_communicator(torch::nn::Module& model, std::shared_ptr<Communicator> communicator) {
  return for_each_batch_norm(model, [&](SyncBatchNorm2d& bn) { bn.set_communicator(communicator); });
}

int set_fused_batch_norm(torch::nn::Module& model, bool on) {
  return for_each_batch_norm(model, [on](SyncBatchNorm2d& bn) { bn.set_fused_kernels(on); });
}

}  // namespace fractrain
