#pragma once
// The autograd side of fake quantization (DESIGN.md 4.1): quantize values in the forward pass and let the
// gradient through unchanged (straight-through estimator), and quantize the gradient arriving at a layer's
// output in the backward pass while the forward value passes unchanged.
#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <vector>

#include "fractrain/quant/fake_quantize.h"
#include "fractrain/quant/range_agreement.h"

namespace fractrain {

// Forward: returns (an alias of) `quantized`, computed by the caller from x without autograd. Backward: d/dx =
// identity.
at::Tensor straight_through(const at::Tensor& x, const at::Tensor& quantized);

// How the gradient at a layer output is quantized: per tensor range (min/max of the whole gradient),
// stochastic rounding, one bit width for the batch (`bits`) or one per sample (`row_bits`, non-empty).
struct GradientQuantization {
  int bits = 0;
  std::vector<int> row_bits;
  PhiloxStream noise;
  bool snap_zero_point = false;
  // Data parallel: the gradient is this rank's slice of the batch's, starting at sample `first_sample` of the
  // whole batch; its range is agreed with the other ranks (null: one process) and its noise continues the whole
  // batch's stream at that sample, so each sample is rounded as in one process.
  std::shared_ptr<RangeAgreement> range_agreement;
  int64_t first_sample = 0;
  // The gradient's range when the caller has already taken (and agreed) it: quantize_gradient then neither
  // measures nor agrees it again (an agreement is a collective, which every rank must run equally often).
  std::optional<QuantRange> range;
  // DFQ's masked execution (LayerPrecision::per_sample_on_device): the widths per sample as an int32 tensor on
  // the gradient's device instead of row_bits, and the samples that run (float 0/1): the range is theirs alone.
  // The gradient then takes the device path (quant/device_quantize.h) on any device.
  at::Tensor device_row_bits;
  at::Tensor running_samples;
  // CUDA Graphs (train.cuda_graphs): the step number in an int64 [1] tensor on the gradient's device and the
  // layer's index. The device path then mixes the noise stream there (RowQuantization::noise_step), so that a
  // replayed graph draws the step's noise; `noise` holds the same stream for the other paths.
  at::Tensor noise_step;
  uint64_t noise_layer = 0;
};

// Fake-quantizes a gradient as `spec` says. In place when `g` is the only handle to its memory (no other
// reference to the tensor, no view of its storage, no graph on it): pass the gradient in with std::move from
// a backward function that owns it. Otherwise into a new tensor, leaving g untouched.
at::Tensor quantize_gradient(at::Tensor g, const GradientQuantization& spec);

// Forward: identity (an alias of y). Backward: the incoming gradient is fake-quantized as `spec` says, in place
// when the autograd engine hands over the only reference to it (otherwise into a new tensor).
at::Tensor quantize_gradient_in_backward(const at::Tensor& y, const GradientQuantization& spec);

}  // namespace fractrain
