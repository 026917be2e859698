#include "fractrain/quant/fake_quantize.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/record_function.h>

#include <optional>

#include "fractrain/quant/device_quantize.h"
#include "fractrain/quant/quantize_kernel.h"
#include "fractrain/quant/range_memo.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

bool use_fused_kernel(const at::Tensor& x) {
  return x.device().is_cpu() && x.scalar_type() == at::kFloat;
}

// Quantizes x viewed as [rows, numel/rows] with per-row parameters into `out` on the fused kernel. The kernel
// works on contiguous buffers: a non-contiguous `out` gets the result through a contiguous temporary.
void quantize_with_params(const at::Tensor& x, const std::vector<kernel::RowQuantParams>& params,
                          const QuantizeOptions& options, at::Tensor& out) {
  RECORD_USER_SCOPE("fractrain::quantize_kernel");
  range_memo::forget(out);  // rewritten through its data pointer (often in place: out is x)
  const at::Tensor input = x.contiguous();
  at::Tensor target = out.is_contiguous() ? out : at::empty(input.sizes(), input.options());
  const int64_t rows = static_cast<int64_t>(params.size());
  const int64_t row_len = rows == 0 ? 0 : input.numel() / rows;
  const PhiloxStream* noise = options.rounding == Rounding::Stochastic ? &options.noise : nullptr;
  kernel::quantize_rows(input.data_ptr<float>(), target.data_ptr<float>(), rows, row_len, params.data(), noise,
                        options.noise_first_index);
  if (!target.is_same(out)) out.copy_(target);
}

void check_rows(const at::Tensor& x, size_t rows, const char* what) {
  if (x.dim() == 0 || x.size(0) != static_cast<int64_t>(rows))
    throw Error(std::string(what) + ": expected one bit width per row (" + std::to_string(rows) +
                "), tensor has dimension 0 of size " + (x.dim() ? std::to_string(x.size(0)) : "none"));
}

void check_out(const at::Tensor& x, const at::Tensor& out, const char* what) {
  if (!out.defined() || out.sizes() != x.sizes() || out.scalar_type() != x.scalar_type() ||
      out.device() != x.device())
    throw Error(std::string(what) + ": `out` must have the shape, dtype and device of the input " +
                x.toString() + " " + c10::str(x.sizes()) + ", got " +
                (out.defined() ? out.toString() + " " + c10::str(out.sizes()) : std::string("an undefined tensor")));
  at::assert_no_partial_overlap(out, x);
}

std::vector<kernel::RowQuantParams> params_for_rows(const std::vector<int>& row_bits, QuantRange range,
                                                    bool snap_zero_point) {
  std::vector<kernel::RowQuantParams> params;
  params.reserve(row_bits.size());
  for (int b : row_bits) params.push_back(kernel::row_params(b, range.lo, range.hi, snap_zero_point));
  return params;
}

// A fresh result buffer: the allocating entry points are the `_out` ones writing into it.
at::Tensor new_output(const at::Tensor& x) { return at::empty(x.sizes(), x.options()); }

// The fused per-row quantization of w with each row's own min/max range: `w` (CPU float) viewed as
// [w.size(0), -1].
at::Tensor quantize_each_row(const at::Tensor& w, int bits, const QuantizeOptions& options) {
  auto [lo, hi] = at::aminmax(w.reshape({w.size(0), -1}), 1);
  const float* lo_ptr = lo.data_ptr<float>();
  const float* hi_ptr = hi.data_ptr<float>();
  std::vector<kernel::RowQuantParams> params;
  params.reserve(w.size(0));
  for (int64_t r = 0; r < w.size(0); ++r)
    params.push_back(kernel::row_params(bits, lo_ptr[r], hi_ptr[r], options.snap_zero_point));
  at::Tensor out = new_output(w);
  quantize_with_params(w, params, options, out);
  return out;
}

// The weight quantizers compute their ranges from the tensor: on the device path those never leave the device.
bool weight_on_device_path(const at::Tensor& w, const QuantizeOptions& options) {
  return options.rounding == Rounding::Nearest && device_quant::applies(w);
}

}  // namespace

QuantRange tensor_range(const at::Tensor& x) {
  if (x.numel() == 0) return {};
  if (const std::optional<QuantRange> known = range_memo::recall(x)) return *known;
  if (use_fused_kernel(x) && x.is_contiguous()) {
    const kernel::MinMax extremes = kernel::min_max(x.data_ptr<float>(), x.numel());
    return {extremes.lo, extremes.hi};
  }
  auto [lo, hi] = at::aminmax(x);
  return {lo.item<float>(), hi.item<float>()};
}

at::Tensor fake_quantize(const at::Tensor& x, int bits, QuantRange range, const QuantizeOptions& options) {
  if (bits == 0 || x.numel() == 0) return x;
  if (!use_fused_kernel(x)) return reference::fake_quantize(x, bits, range, options);
  at::Tensor out = new_output(x);
  return fake_quantize_out(x, bits, range, options, out);
}

at::Tensor& fake_quantize_out(const at::Tensor& x, int bits, QuantRange range, const QuantizeOptions& options,
                              at::Tensor& out) {
  check_out(x, out, "fake_quantize_out");
  if (x.numel() == 0) return out;
  if (bits == 0) return out.is_same(x) ? out : out.copy_(x);
  if (!use_fused_kernel(x)) return out.copy_(reference::fake_quantize(x, bits, range, options));
  quantize_with_params(x, {kernel::row_params(bits, range.lo, range.hi, options.snap_zero_point)}, options, out);
  return out;
}

at::Tensor fake_quantize_rows(const at::Tensor& x, const std::vector<int>& row_bits, QuantRange range,
                              const QuantizeOptions& options) {
  check_rows(x, row_bits.size(), "fake_quantize_rows");
  if (!use_fused_kernel(x)) return reference::fake_quantize_rows(x, row_bits, range, options);
  at::Tensor out = new_output(x);
  return fake_quantize_rows_out(x, row_bits, range, options, out);
}

at::Tensor& fake_quantize_rows_out(const at::Tensor& x, const std::vector<int>& row_bits, QuantRange range,
                                   const QuantizeOptions& options, at::Tensor& out) {
  check_rows(x, row_bits.size(), "fake_quantize_rows_out");
  check_out(x, out, "fake_quantize_rows_out");
  if (!use_fused_kernel(x)) return out.copy_(reference::fake_quantize_rows(x, row_bits, range, options));
  quantize_with_params(x, params_for_rows(row_bits, range, options.snap_zero_point), options, out);
  return out;
}

at::Tensor fake_quantize_per_channel(const at::Tensor& w, int bits, const QuantizeOptions& options) {
  if (bits == 0 || w.numel() == 0) return w;
  if (weight_on_device_path(w, options)) return device_quant::quantize_per_channel(w, bits, options.snap_zero_point);
  if (!use_fused_kernel(w)) return reference::fake_quantize_per_channel(w, bits, options);
  return quantize_each_row(w, bits, options);
}

at::Tensor fake_quantize_per_input_channel(const at::Tensor& w, int bits, const QuantizeOptions& options) {
  if (w.dim() < 2)
    throw Error("fake_quantize_per_input_channel: expected a weight [out, in, ...] of 2 or more dimensions, got " +
                std::to_string(w.dim()));
  if (bits == 0 || w.numel() == 0) return w;
  if (weight_on_device_path(w, options))
    return device_quant::quantize_per_input_channel(w, bits, options.snap_zero_point);
  if (!use_fused_kernel(w)) return reference::fake_quantize_per_input_channel(w, bits, options);
  // Input channels as rows: a weight is small next to the activations it multiplies, so two transposing copies
  // cost little, and the row kernel then sees one long contiguous row per range (a linear weight's input channel
  // is a strided column otherwise, and a conv's a run of kernel_h * kernel_w floats every in_channels * that).
  // Copying in input-channel-major order is also what gives stochastic rounding its documented noise indices.
  const at::Tensor by_input = w.transpose(0, 1).contiguous();
  return quantize_each_row(by_input, bits, options).transpose(0, 1).contiguous();
}

}  // namespace fractrain
