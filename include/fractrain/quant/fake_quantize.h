#pragma once
// Asymmetric uniform fake quantization (DESIGN.md 4.1):
//   s = max((hi - lo) / (2^b - 1), 1e-8);  t = (x - lo) / s  [+ u, u ~ U(-0.5, 0.5) when stochastic];
//   t = round_half_even(clamp(t, 0, 2^b - 1));  x_hat = t * s + lo.
// b = 0 means "not quantized" (the input is returned as is).
//
// Two implementations with identical results on CPU: a fused, vectorised one-pass kernel (used for CPU float
// tensors), and `reference::` written with plain tensor ops (the specification, and the path used on other
// devices). Tests compare them bit for bit.
#include <ATen/core/Tensor.h>

#include <vector>

#include "fractrain/random/philox.h"

namespace fractrain {

enum class Rounding { Nearest, Stochastic };

struct QuantRange {
  float lo = 0.0f;
  float hi = 0.0f;
};

struct QuantizeOptions {
  Rounding rounding = Rounding::Nearest;
  // Stochastic rounding noise: element i (flat index in x) uses noise.uniform(noise_first_index + i) - 0.5.
  PhiloxStream noise;
  // Where x starts in the stream: a data-parallel rank quantizing its slice of a batch passes the slice's offset
  // in the whole batch, so that every sample gets the noise it would get in one process.
  uint64_t noise_first_index = 0;
  // Snap the zero point `lo` to the integer grid (lo = round(lo / s) * s), as real integer kernels need.
  bool snap_zero_point = false;
};

// Min and max over the whole tensor.
QuantRange tensor_range(const at::Tensor& x);

// One range and one bit width for the whole tensor.
at::Tensor fake_quantize(const at::Tensor& x, int bits, QuantRange range, const QuantizeOptions& options = {});

// One range for the whole tensor, one bit width per row (dimension 0, i.e. per sample); 0 = row untouched.
at::Tensor fake_quantize_rows(const at::Tensor& x, const std::vector<int>& row_bits, QuantRange range,
                              const QuantizeOptions& options = {});

// The same two, writing the result into `out` (same shape and dtype as x) and returning it. `out` may be x
// itself (quantize in place) or a reused buffer, which spares the allocation and the page faults of fresh
// memory; it must not partially overlap x. Results are identical to the allocating versions.
at::Tensor& fake_quantize_out(const at::Tensor& x, int bits, QuantRange range, const QuantizeOptions& options,
                              at::Tensor& out);
at::Tensor& fake_quantize_rows_out(const at::Tensor& x, const std::vector<int>& row_bits, QuantRange range,
                                   const QuantizeOptions& options, at::Tensor& out);

// One range per row (dimension 0: per output channel of a weight), computed from the tensor itself.
at::Tensor fake_quantize_per_channel(const at::Tensor& w, int bits, const QuantizeOptions& options = {});

// One range per input channel (dimension 1 of a weight [O, I, ...]: min/max over every other dimension),
// computed from the tensor itself. The error backward's weight under ErrorWeightRanges::PerInputChannel, whose
// scale is then constant along dX's sum over output channels. With stochastic rounding, element (o, i, ...)
// draws the noise of its flat index in w.transpose(0, 1) (input channel major). Needs w.dim() >= 2.
at::Tensor fake_quantize_per_input_channel(const at::Tensor& w, int bits, const QuantizeOptions& options = {});

namespace reference {
at::Tensor fake_quantize(const at::Tensor& x, int bits, QuantRange range, const QuantizeOptions& options = {});
at::Tensor fake_quantize_rows(const at::Tensor& x, const std::vector<int>& row_bits, QuantRange range,
                              const QuantizeOptions& options = {});
at::Tensor fake_quantize_per_channel(const at::Tensor& w, int bits, const QuantizeOptions& options = {});
at::Tensor fake_quantize_per_input_channel(const at::Tensor& w, int bits, const QuantizeOptions& options = {});
// The stochastic-rounding noise tensor the fused kernel uses (shape of x, values in [-0.5, 0.5)): element i is
// noise.uniform(first_index + i) - 0.5.
at::Tensor rounding_noise(const at::Tensor& like, const PhiloxStream& noise, uint64_t first_index = 0);
}  // namespace reference

}  // namespace fractrain
