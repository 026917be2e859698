// The integer passes' specification: the float64 convolution of the values the codes stand for, rounded once
// to float. Slow and plain; tests compare the integer kernels with it.
#include <ATen/ATen.h>

#include "fractrain/integer/integer_conv.h"

namespace fractrain::integer::reference {
namespace {

// The codes' values in float64, [N, C, H, W].
at::Tensor values(const ConvGeometry& g, const FeatureCodes& f, int64_t height, int64_t width) {
  std::vector<double> scale, offset;
  for (const CodeScale& s : f.samples) {
    scale.push_back(s.scale);
    offset.push_back(s.offset);
  }
  const at::Tensor s = at::tensor(scale, at::kDouble).view({g.batch, 1, 1});
  const at::Tensor o = at::tensor(offset, at::kDouble).view({g.batch, 1, 1});
  const at::Tensor v = (f.codes.to(at::kDouble) + o) * s;  // [N, positions, C]
  return v.permute({0, 2, 1}).reshape({g.batch, f.channels, height, width});
}

at::Tensor weight_values(const WeightCodes& w, const ConvGeometry& g) {
  return dequantize_weight(w).to(at::kDouble).reshape({g.out_channels, g.in_channels / g.groups, g.kernel, g.kernel});
}

// [N, C, H, W] float64 -> float in the caller's layout.
at::Tensor in_layout(const at::Tensor& v, FeatureLayout layout) {
  const at::Tensor flat = v.reshape({v.size(0), v.size(1), -1});
  return (layout == FeatureLayout::ChannelsFirst ? flat : flat.permute({0, 2, 1})).to(at::kFloat).contiguous();
}

}  // namespace

at::Tensor conv_forward(const ConvGeometry& g, const FeatureCodes& x, const WeightCodes& w, const at::Tensor& bias,
                        FeatureLayout layout) {
  const at::Tensor b = bias.defined() ? bias.to(at::kDouble) : at::Tensor();
  return in_layout(
      at::conv2d(values(g, x, g.height, g.width), weight_values(w, g), b, g.stride, g.padding, 1, g.groups), layout);
}

at::Tensor conv_backward_data(const ConvGeometry& g, const FeatureCodes& dy, const WeightCodes& w,
                              FeatureLayout layout) {
  const at::Tensor x_like = at::zeros({g.batch, g.in_channels, g.height, g.width}, at::kDouble);
  auto grads = at::convolution_backward(values(g, dy, g.out_height(), g.out_width()), x_like, weight_values(w, g),
                                        at::nullopt, {g.stride, g.stride}, {g.padding, g.padding}, {1, 1}, false,
                                        {0, 0}, g.groups, {true, false, false});
  return in_layout(std::get<0>(grads), layout);
}

at::Tensor conv_backward_weight(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy) {
  const at::Tensor w_like = at::zeros({g.out_channels, g.in_channels / g.groups, g.kernel, g.kernel}, at::kDouble);
  auto grads = at::convolution_backward(values(g, dy, g.out_height(), g.out_width()),
                                        values(g, x, g.height, g.width), w_like, at::nullopt, {g.stride, g.stride},
                                        {g.padding, g.padding}, {1, 1}, false, {0, 0}, g.groups, {false, true, false});
  return std::get<1>(grads).to(at::kFloat);
}

}  // namespace fractrain::integer::reference
