#include "fractrain/nn/qconv2d.h"

#include <torch/torch.h>

#include <cmath>

#include "fractrain/cost/mac_count.h"
#include "fractrain/util/error.h"
#include "integer_layer_backward.h"

namespace fractrain {

QConv2d::QConv2d(const QConv2dOptions& options) : options_(options) {
  if (options.in_channels <= 0 || options.out_channels <= 0 || options.kernel_size <= 0 || options.stride <= 0 ||
      options.groups <= 0 || options.in_channels % options.groups || options.out_channels % options.groups)
    throw Error("QConv2d: invalid shape (in " + std::to_string(options.in_channels) + ", out " +
                std::to_string(options.out_channels) + ", kernel " + std::to_string(options.kernel_size) +
                ", groups " + std::to_string(options.groups) + ")");
  // He initialisation as in the CIFAR ResNet papers: N(0, sqrt(2 / (k * k * C_out))).
  const double fan_out = static_cast<double>(options.kernel_size * options.kernel_size * options.out_channels);
  weight_ = register_parameter(
      "weight", torch::randn({options.out_channels, options.in_channels / options.groups, options.kernel_size,
                              options.kernel_size}) *
                    std::sqrt(2.0 / fan_out));
  if (options.bias) bias_ = register_parameter("bias", torch::zeros({options.out_channels}));
}

LayerKind QConv2d::kind() const {
  const bool depthwise = options_.groups > 1 && options_.groups == options_.in_channels;
  return depthwise ? LayerKind::DepthwiseConv : LayerKind::Conv;
}

// Each output position reads in_channels x stride x stride input elements (counted over the whole input, not the
// receptive field): exact whenever the input's height and width are multiples of the stride.
WeightedLayerGeometry QConv2d::operand_geometry() const {
  return {weight_.sizes().vec(), options_.out_channels, options_.in_channels * options_.stride * options_.stride};
}

at::Tensor QConv2d::compute(const at::Tensor& x, const at::Tensor& w) {
  if (x.dim() != 4 || x.size(1) != options_.in_channels)
    throw Error("layer " + layer_name() + ": expected input [N, " + std::to_string(options_.in_channels) +
                ", H, W], got " + std::to_string(x.dim()) + "-d input with " +
                (x.dim() > 1 ? std::to_string(x.size(1)) : std::string("?")) + " channels");
  return torch::conv2d(x, w, bias_, options_.stride, options_.padding, 1, options_.groups);
}

LayerGradients QConv2d::gradients() const {
  const QConv2dOptions o = options_;
  const bool has_bias = bias_.defined();
  // The call autograd makes for torch::conv2d (ConvolutionBackward0), so the gradients are those of the float
  // convolution of the same operands, bit for bit.
  return [o, has_bias](const at::Tensor& g, const at::Tensor& x, const at::Tensor& w, std::array<bool, 3> needed) {
    const std::array<int64_t, 1> bias_sizes{o.out_channels};
    const auto bias = has_bias ? at::OptionalIntArrayRef(bias_sizes) : at::OptionalIntArrayRef();
    auto [dx, dw, db] =
        at::convolution_backward(g, x, w, bias, {o.stride, o.stride}, {o.padding, o.padding}, /*dilation=*/{1, 1},
                                 /*transposed=*/false, /*output_padding=*/{0, 0}, o.groups,
                                 {needed[0], needed[1], needed[2] && has_bias});
    return std::array<at::Tensor, 3>{dx, dw, db};
  };
}

// Dense and depthwise convolutions run on integers (depthwise on plain loops of their own,
// src/integer/integer_depthwise.h); other groupings would need a per-group formulation of oneDNN's int8 products.
std::optional<IntegerShape> QConv2d::integer_shape(const at::Tensor& x) const {
  if (!has_integer_kernel() || x.dim() != 4 || x.size(1) != options_.in_channels) return std::nullopt;
  IntegerShape shape;
  integer::ConvGeometry& g = shape.geometry;
  g.batch = x.size(0);
  g.in_channels = options_.in_channels;
  g.out_channels = options_.out_channels;
  g.height = x.size(2);
  g.width = x.size(3);
  g.kernel = options_.kernel_size;
  g.stride = options_.stride;
  g.padding = options_.padding;
  g.groups = options_.groups;
  shape.layout = integer::FeatureLayout::ChannelsFirst;
  shape.output_sizes = {g.batch, g.out_channels, g.out_height(), g.out_width()};
  return shape;
}

bool QConv2d::has_integer_kernel() const {
  const bool depthwise = options_.groups == options_.in_channels && options_.groups == options_.out_channels;
  return (options_.groups == 1 || depthwise) && options_.kernel_size <= integer::kMaxIntegerKernel;
}

std::string QConv2d::integer_refusal() const {
  if (options_.groups != 1 && !(options_.groups == options_.in_channels && options_.groups == options_.out_channels))
    return "no integer kernel for grouped convolutions other than depthwise (" + std::to_string(options_.groups) +
           " groups of " + std::to_string(options_.in_channels) + " -> " + std::to_string(options_.out_channels) +
           " channels)";
  if (options_.kernel_size > integer::kMaxIntegerKernel)
    return "no integer kernel for " + std::to_string(options_.kernel_size) + "x" +
           std::to_string(options_.kernel_size) + " convolutions (up to " + std::to_string(integer::kMaxIntegerKernel) +
           "x" + std::to_string(integer::kMaxIntegerKernel) + ")";
  return QuantizedLayer::integer_refusal();
}

int64_t QConv2d::macs_per_sample(const at::Tensor& x, const at::Tensor& y) const {
  return conv2d_macs(options_.in_channels, options_.out_channels, options_.kernel_size, options_.kernel_size,
                     y.size(2), y.size(3), options_.groups);
}

}  // namespace fractrain

namespace fractrain {

int64_t QConv2d::output_size(int64_t input_size) const {
  return (input_size + 2 * options_.padding - options_.kernel_size) / options_.stride + 1;
}

int64_t QConv2d::macs_for_input(int64_t height, int64_t width) const {
  return conv2d_macs(options_.in_channels, options_.out_channels, options_.kernel_size, options_.kernel_size,
                     output_size(height), output_size(width), options_.groups);
}

}  // namespace fractrain
