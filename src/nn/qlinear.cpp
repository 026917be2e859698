#include "fractrain/nn/qlinear.h"

#include <torch/torch.h>

#include <cmath>

#include "fractrain/cost/mac_count.h"
#include "fractrain/util/error.h"
#include "integer_layer_backward.h"

namespace fractrain {

QLinear::QLinear(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  if (in_features <= 0 || out_features <= 0)
    throw Error("QLinear: invalid shape " + std::to_string(in_features) + " -> " + std::to_string(out_features));
  // PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight_ = register_parameter("weight", torch::empty({out_features, in_features}).uniform_(-bound, bound));
  if (bias) bias_ = register_parameter("bias", torch::empty({out_features}).uniform_(-bound, bound));
}

at::Tensor QLinear::compute(const at::Tensor& x, const at::Tensor& w) {
  if (x.dim() < 2 || x.size(-1) != in_features_)
    throw Error("layer " + layer_name() + ": expected input [..., " + std::to_string(in_features_) + "], got last dim " +
                (x.dim() ? std::to_string(x.size(-1)) : std::string("none")));
  return torch::linear(x, w, bias_);
}

LayerGradients QLinear::gradients() const {
  const bool has_bias = bias_.defined();
  // As autograd differentiates linear = addmm(bias, x, w^T): dx = g w, dw = (x^T g)^T, dbias = sum of g over
  // samples (and tokens).
  return [has_bias](const at::Tensor& g, const at::Tensor& x, const at::Tensor& w, std::array<bool, 3> needed) {
    const at::Tensor g2 = g.reshape({-1, g.size(-1)});
    std::array<at::Tensor, 3> grads;
    if (needed[0]) grads[0] = g.matmul(w);
    if (needed[1]) grads[1] = x.reshape({-1, x.size(-1)}).t().mm(g2).t();
    if (needed[2] && has_bias) grads[2] = g2.sum(0);
    return grads;
  };
}

// Each output position (a sample, or a token of it) reads one input vector.
WeightedLayerGeometry QLinear::operand_geometry() const {
  return {weight_.sizes().vec(), out_features_, in_features_};
}

bool QLinear::has_integer_kernel() const { return true; }

// A 1x1 convolution over the tokens (one token for [N, in] inputs), channels last.
std::optional<IntegerShape> QLinear::integer_shape(const at::Tensor& x) const {
  if (x.dim() < 2 || x.size(-1) != in_features_) return std::nullopt;
  IntegerShape shape;
  integer::ConvGeometry& g = shape.geometry;
  g.batch = x.size(0);
  g.in_channels = in_features_;
  g.out_channels = out_features_;
  g.height = x.numel() / std::max<int64_t>(1, x.size(0) * in_features_);
  g.width = 1;
  shape.layout = integer::FeatureLayout::ChannelsLast;
  shape.output_sizes = x.sizes().vec();
  shape.output_sizes.back() = out_features_;
  return shape;
}

int64_t QLinear::macs_per_sample(const at::Tensor& x, const at::Tensor& y) const {
  const int64_t tokens = x.dim() == 2 ? 1 : x.numel() / (x.size(0) * in_features_);
  return linear_macs(in_features_, out_features_, tokens);
}

}  // namespace fractrain
