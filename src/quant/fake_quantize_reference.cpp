// The quantizer written as the specification reads, with tensor ops. Slow (several passes and temporaries)
// but obviously right; the fused kernel is tested against it, and it serves devices without a fused kernel.
#include <ATen/ATen.h>

#include "fractrain/quant/fake_quantize.h"
#include "fractrain/util/error.h"

namespace fractrain::reference {
namespace {

// Quantizes x viewed as [rows, -1]; lo/hi/levels are [rows, 1] float tensors; levels == 0 rows are copied.
at::Tensor quantize_rows(const at::Tensor& x, at::Tensor lo, const at::Tensor& hi, const at::Tensor& levels,
                         const QuantizeOptions& options) {
  const int64_t rows = levels.size(0);
  at::Tensor flat = x.reshape({rows, -1});
  at::Tensor active = levels > 0;
  at::Tensor safe_levels = at::where(active, levels, at::ones_like(levels));
  at::Tensor s = ((hi - lo) / safe_levels).clamp_min(1e-8);
  if (options.snap_zero_point) lo = (lo / s).round() * s;
  at::Tensor t = (flat - lo) / s;
  if (options.rounding == Rounding::Stochastic) {
    if (x.device().is_cpu()) {
      t = t + rounding_noise(flat, options.noise, options.noise_first_index);
    } else {
      // Off the CPU the noise comes from the device generator (seeded from the run seed); it is unbiased
      // but not bit-identical to the CPU's Philox stream.
      t = t + (at::rand_like(t) - 0.5);
    }
  }
  t = at::minimum(at::maximum(t, at::zeros_like(levels)), levels).round();
  at::Tensor q = t * s + lo;
  return at::where(active, q, flat).reshape(x.sizes());
}

at::Tensor column(const std::vector<float>& values, const at::Tensor& like) {
  return at::tensor(values, at::TensorOptions().dtype(at::kFloat)).reshape({-1, 1}).to(like.device());
}

float levels_for(int bits) { return bits <= 0 ? 0.0f : static_cast<float>((uint64_t{1} << bits) - 1); }

}  // namespace

at::Tensor rounding_noise(const at::Tensor& like, const PhiloxStream& noise, uint64_t first_index) {
  at::Tensor out = at::empty({like.numel()}, at::TensorOptions().dtype(at::kFloat));
  float* p = out.data_ptr<float>();
  for (int64_t i = 0; i < like.numel(); ++i) p[i] = noise.uniform(first_index + static_cast<uint64_t>(i)) - 0.5f;
  return out.reshape(like.sizes());
}

at::Tensor fake_quantize(const at::Tensor& x, int bits, QuantRange range, const QuantizeOptions& options) {
  if (bits == 0 || x.numel() == 0) return x;
  return quantize_rows(x, column({range.lo}, x), column({range.hi}, x), column({levels_for(bits)}, x), options);
}

at::Tensor fake_quantize_rows(const at::Tensor& x, const std::vector<int>& row_bits, QuantRange range,
                              const QuantizeOptions& options) {
  if (x.dim() == 0 || x.size(0) != static_cast<int64_t>(row_bits.size()))
    throw Error("reference::fake_quantize_rows: one bit width per row expected");
  const size_t rows = row_bits.size();
  std::vector<float> levels(rows);
  for (size_t r = 0; r < rows; ++r) levels[r] = levels_for(row_bits[r]);
  return quantize_rows(x, column(std::vector<float>(rows, range.lo), x), column(std::vector<float>(rows, range.hi), x),
                       column(levels, x), options);
}

at::Tensor fake_quantize_per_channel(const at::Tensor& w, int bits, const QuantizeOptions& options) {
  if (bits == 0 || w.numel() == 0) return w;
  at::Tensor flat = w.reshape({w.size(0), -1});
  at::Tensor lo = std::get<0>(flat.min(1, true));
  at::Tensor hi = std::get<0>(flat.max(1, true));
  at::Tensor levels = at::full({w.size(0), 1}, levels_for(bits), w.options());
  return quantize_rows(w, lo, hi, levels, options);
}

// The formula of quantize_rows with ranges broadcast along dimension 1 ([1, I, 1, ...]) instead of rows.
at::Tensor fake_quantize_per_input_channel(const at::Tensor& w, int bits, const QuantizeOptions& options) {
  if (w.dim() < 2)
    throw Error("reference::fake_quantize_per_input_channel: a weight of 2 or more dimensions expected");
  if (bits == 0 || w.numel() == 0) return w;
  std::vector<int64_t> other_dims;
  for (int64_t d = 0; d < w.dim(); ++d)
    if (d != 1) other_dims.push_back(d);
  at::Tensor lo = w.amin(other_dims, /*keepdim=*/true);
  const at::Tensor hi = w.amax(other_dims, /*keepdim=*/true);
  const float levels = levels_for(bits);
  const at::Tensor s = ((hi - lo) / levels).clamp_min(1e-8);
  if (options.snap_zero_point) lo = (lo / s).round() * s;
  at::Tensor t = (w - lo) / s;
  if (options.rounding == Rounding::Stochastic) {
    if (w.device().is_cpu()) {
      // Noise by flat index in input-channel-major order, as documented (and as the fused kernel draws it).
      const at::Tensor by_input = w.transpose(0, 1);
      t = t + rounding_noise(by_input, options.noise, options.noise_first_index).transpose(0, 1);
    } else {
      t = t + (at::rand_like(t) - 0.5);
    }
  }
  t = t.clamp(0.0f, levels).round();
  return t * s + lo;
}

}  // namespace fractrain::reference
