#pragma once
// The integer passes of a depthwise convolution (groups = in_channels = out_channels, one k x k filter per
// channel: MobileNetV2's), which conv_forward, conv_backward_data and conv_backward_weight (integer_conv.h) hand
// over to. Each output is a sum over at most k x k taps of one channel, so oneDNN's dense int8 primitives do not
// fit and the work is small: plain loops over planar codes, with exact int64 sums and the same corrections as the
// dense passes. A depthwise weight's range per input channel is its output channel's (quantized_layer_backward.h),
// so the forward and the error backward read the same weight codes (ranges per output channel, axis 0; axis 1,
// one range for all channels, is accepted too). Internal to src/integer.
#include <ATen/core/Tensor.h>

#include "fractrain/integer/integer_conv.h"

namespace fractrain::integer::detail {

at::Tensor depthwise_forward(const ConvGeometry& g, const FeatureCodes& x, const WeightCodes& w,
                             const at::Tensor& bias, FeatureLayout layout);
at::Tensor depthwise_backward_data(const ConvGeometry& g, const FeatureCodes& dy, const WeightCodes& w,
                                   FeatureLayout layout);
at::Tensor depthwise_backward_weight(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy);

}  // namespace fractrain::integer::detail
