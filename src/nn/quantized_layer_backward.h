#pragma once
// The autograd side of a quantized layer (internal to QuantizedLayer): one backward node per layer execution
// that quantizes the output gradient, requantizes the input and computes the layer's gradients on the
// quantized operands, passing them straight through to the float input, weight and bias (DESIGN.md 4.1).
//
// Why one node that requantizes rather than autograd over conv(Q(x), Q(w)): the latter keeps Q(x), a second
// copy of every layer input, alive from forward to backward. That grows the step's peak memory by the size of
// all layer inputs, and the heap growth comes back as page faults on fresh memory every step, which cost more
// than quantizing does. x itself is kept anyway (by the layer that produced it, and by this node, as a float
// convolution would), and requantizing it with the forward range is cheap and bit-identical (nearest rounding).
#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <vector>

#include "fractrain/nn/layer_gradients.h"
#include "fractrain/quant/fake_quantize.h"
#include "fractrain/quant/straight_through.h"

namespace fractrain {

// How a layer input is quantized: one width (`bits`) or one per sample (`row_bits`), over `range`, nearest
// rounding. Applied in the forward pass and again, identically, in the backward pass.
struct InputQuantization {
  int bits = 0;
  std::vector<int> row_bits;
  QuantRange range;
  bool snap_zero_point = false;
  // On the device path (quant/device_quantize.h) the range never comes to the host: `device_range` holds it
  // (float [2] on x's device, `range` is unused), and `device_row_bits` DFQ's widths (int32 [N]: row_bits as a
  // tensor, or, under DFQ's masked execution, the only copy of them).
  at::Tensor device_range;
  at::Tensor device_row_bits;

  bool active() const;
  // Q(x), or x itself when inactive. On CPU the result lives in per-thread scratch memory that the next call
  // on the thread overwrites: use it for one float op and drop it, never keep it (or a view of it).
  at::Tensor apply_transient(const at::Tensor& x) const;
};

// The error backward's own weight quantization (ErrorWeightRanges::PerInputChannel): `bits` wide, nearest
// rounding, one range per input channel of the layer. Entry i of dimension 1 of a grouped conv's weight
// [O, I / groups, ...] is a different input channel in each group, so its range spans only the output channels
// of one group (a depthwise conv's range is then its output channel's).
struct ErrorWeightQuantization {
  int bits = 0;
  int64_t groups = 1;
  bool snap_zero_point = false;

  at::Tensor apply(const at::Tensor& w) const;
};

struct QuantizedLayerGraph {
  InputQuantization input;
  // The weight the backward's gradients receive: Q(w), or w itself when weights are not quantized; with
  // error_weight, the FP32 w, which the backward quantizes for dX (dW does not depend on the weight's values).
  at::Tensor quantized_weight;
  std::optional<GradientQuantization> gradient;
  std::optional<ErrorWeightQuantization> error_weight;
  LayerGradients gradients;
};

// The simulated backward of one layer execution: quantizes g (in place when it is the only handle to its
// memory), requantizes x, and returns the gradients of the float op at (Q(x), weight) for Q(g).
std::array<at::Tensor, 3> simulated_layer_gradients(at::Tensor g, const at::Tensor& x, const at::Tensor& weight,
                                                    const InputQuantization& input,
                                                    const std::optional<GradientQuantization>& gradient,
                                                    const LayerGradients& gradients, std::array<bool, 3> needed);

// Makes y (computed without autograd from the quantized operands) differentiable with respect to x, w and
// bias (bias may be undefined) through one backward node as described above.
at::Tensor attach_quantized_layer_backward(at::Tensor y, const at::Tensor& x, const at::Tensor& w,
                                           const at::Tensor& bias, QuantizedLayerGraph graph);

}  // namespace fractrain
