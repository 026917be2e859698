#pragma once
// The three passes of a quantized convolution or linear layer on integer codes (precision.execution = integer):
// exact 32-bit integer sums of code products on oneDNN's int8 primitives, then the zero-point corrections and
// the scales (integer_codes.h: value = scale * (code + offset)). For one output element with K terms,
//   sum (a + oa)(b + ob) = sum a*b + ob * sum a + oa * sum b + K * oa * ob,
// where padding contributes nothing (it is real 0, not code 0): the box sums and K count valid terms only.
// A scale factors out of a sum only where it is constant along the summed axis, which decides what each pass
// accepts: per-sample activation/gradient scales in the forward and the error backward, per-output-channel
// weight scales in the forward, per-input-channel weight scales in the error backward, and, in the weight
// gradient, one sum per group of samples sharing their scales (DFQ's options).
//
// `reference::` computes the same values from the dequantized operands in float64 (exact sums of products of
// codes, rounded once to float): tests compare the two.
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "fractrain/integer/integer_codes.h"

namespace fractrain::integer {

// The largest kernel side the integer passes take.
constexpr int64_t kMaxIntegerKernel = 8;

// A 2-D convolution without dilation; a linear layer is a 1x1 convolution over `height` tokens. `groups` is 1
// (dense) or in_channels = out_channels (depthwise: one k x k filter per channel, weights [C, 1, k, k], on plain
// loops of their own: src/integer/integer_depthwise.h); other groupings are refused.
struct ConvGeometry {
  int64_t batch = 0, in_channels = 0, out_channels = 0, height = 0, width = 0;
  int64_t kernel = 1, stride = 1, padding = 0;
  int64_t groups = 1;
  int64_t out_height() const { return (height + 2 * padding - kernel) / stride + 1; }
  int64_t out_width() const { return (width + 2 * padding - kernel) / stride + 1; }
  bool depthwise() const { return groups > 1 && groups == in_channels && groups == out_channels; }
};

// y = conv(x, w) + bias: x's codes [N, H*W, I] (uint8), w per output channel (axis 0). Returns float
// [N, O, Ho, Wo] for ChannelsFirst, [N, Ho*Wo, O] for ChannelsLast (reshape to the caller's shape).
at::Tensor conv_forward(const ConvGeometry& g, const FeatureCodes& x, const WeightCodes& w, const at::Tensor& bias,
                        FeatureLayout layout);
// dx = the transposed convolution of dy's codes [N, Ho*Wo, O] (int8) with w per input channel (axis 1). Returns
// float [N, I, H, W] (ChannelsFirst) or [N, H*W, I] (ChannelsLast).
at::Tensor conv_backward_data(const ConvGeometry& g, const FeatureCodes& dy, const WeightCodes& w,
                              FeatureLayout layout);
// dw [O, I, k, k] = the sum over samples and positions of dy (int8 codes) times the input patches of x (uint8
// codes). The sum is split into chunks whose int32 sums cannot overflow. On oneDNN's int8 convolution with
// samples and channels swapped, as a matrix product over im2col patches (which uses dy's channel-major copy
// when it has one), or on fractrain's own AVX-512 VNNI kernel: see WeightGradientProduct. All three form the
// same exact integer sums.
enum class WeightGradientProduct {
  Fastest,  // whichever of the swapped convolution, the patches and (on CPUs with AVX-512 VNNI) the own kernel
            // ran faster in the first calls for the shape (the patches where oneDNN has no fast swapped kernel
            // or a sample's sums could overflow int32)
  Patches,  // always im2col patches
  Direct,   // always the own kernel (src/integer/direct_weight_gradient.h); on a CPU without AVX-512 VNNI its
            // portable form, exact but slow (for tests)
};
at::Tensor conv_backward_weight(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy,
                                WeightGradientProduct product = WeightGradientProduct::Fastest);
// dbias [O] = the sum of dy's values over samples and positions (exact in integers per sample group).
at::Tensor bias_gradient(const FeatureCodes& dy);

// The largest number of terms an int32 sum of products of codes of these magnitudes can hold without overflow.
int64_t max_exact_terms(int64_t magnitude_a, int64_t magnitude_b);

namespace reference {
at::Tensor conv_forward(const ConvGeometry& g, const FeatureCodes& x, const WeightCodes& w, const at::Tensor& bias,
                        FeatureLayout layout);
at::Tensor conv_backward_data(const ConvGeometry& g, const FeatureCodes& dy, const WeightCodes& w,
                              FeatureLayout layout);
at::Tensor conv_backward_weight(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy);
}  // namespace reference

}  // namespace fractrain::integer
