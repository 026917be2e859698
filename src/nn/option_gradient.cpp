#include "fractrain/nn/option_gradient.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>

#include "fractrain/quant/device_quantize.h"
#include "fractrain/quant/quant_math.h"
#include "fractrain/quant/quantize_kernel.h"
#include "fractrain/quant/simd_quotient.h"
#include "fractrain/util/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define FRACTRAIN_OPTION_AVX512 1
#endif

namespace fractrain {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FRACTRAIN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FRACTRAIN_CLONES
#endif

// sum_i g[i] * Q(x[i]) for one span; the same arithmetic as the quantizer's nearest rounding. The sum is kept
// in kLanes partial sums so that the compiler vectorises the loop (a single float accumulator is a serial
// dependency it may not reorder).
constexpr int kLanes = 16;

FRACTRAIN_CLONES
float quantized_dot(const float* x, const float* g, int64_t n, float lo, float s, float levels) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += g[i + j] * quant_math::quantize_nearest(x[i + j], lo, s, levels);
  }
  float sum = 0.0f;
  for (; i < n; ++i) sum += g[i] * quant_math::quantize_nearest(x[i], lo, s, levels);
  for (float a : acc) sum += a;
  return sum;
}

FRACTRAIN_CLONES
float plain_dot(const float* x, const float* g, int64_t n) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += g[i + j] * x[i + j];
  float sum = 0.0f;
  for (; i < n; ++i) sum += g[i] * x[i];
  for (float a : acc) sum += a;
  return sum;
}

// The quantized widths of one call, each with its quantizer's parameters and the row sum it adds to.
struct QuantizedWidth {
  const kernel::RowQuantParams* params;
  double* sum;
};

// sums[k] += quantized_dot(x, g, n, widths[k]) for every width in one pass over the span, bit for bit.
void quantized_dots_portable(const float* x, const float* g, int64_t n, const QuantizedWidth* widths, int count) {
  for (int k = 0; k < count; ++k) {
    const kernel::RowQuantParams& p = *widths[k].params;
    *widths[k].sum += quantized_dot(x, g, n, p.lo, p.scale, p.levels);
  }
}

#if FRACTRAIN_OPTION_AVX512
// The same on AVX-512, up to kWidthsPerPass widths per pass over x and g. Its lanes are quantized_dot's kLanes
// partial sums, each formed by the same float operations in the same order (no FMA in the sums), and the lanes are
// added to the tail's serial sum in quantized_dot's order, so every result is that function's bit for bit; the
// quotient is the division's without a division (simd_quotient.h).
constexpr int kWidthsPerPass = 4;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC bug 105593: _mm512_* intrinsics in GCC 12's headers
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f,fma"))) void quantized_dots_avx512(const float* x, const float* g, int64_t n,
                                                             const QuantizedWidth* widths, int count) {
  for (int first = 0; first < count; first += kWidthsPerPass) {
    const int here = std::min(kWidthsPerPass, count - first);
    __m512 lo[kWidthsPerPass], scale[kWidthsPerPass], inverse[kWidthsPerPass], levels[kWidthsPerPass],
        acc[kWidthsPerPass];
    for (int k = 0; k < here; ++k) {
      const kernel::RowQuantParams& p = *widths[first + k].params;
      lo[k] = _mm512_set1_ps(p.lo);
      scale[k] = _mm512_set1_ps(p.scale);
      inverse[k] = _mm512_set1_ps(1.0f / p.scale);
      levels[k] = _mm512_set1_ps(p.levels);
      acc[k] = _mm512_setzero_ps();
    }
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      const __m512 xv = _mm512_loadu_ps(x + i), gv = _mm512_loadu_ps(g + i);
      for (int k = 0; k < here; ++k) {
        const __m512 t = simd::quotient(_mm512_sub_ps(xv, lo[k]), scale[k], inverse[k]);
        const __m512 code = simd::round_half_even(simd::clamp_to_levels(t, levels[k]));
        const __m512 q = _mm512_add_ps(_mm512_mul_ps(code, scale[k]), lo[k]);
        acc[k] = _mm512_add_ps(acc[k], _mm512_mul_ps(gv, q));
      }
    }
    for (int k = 0; k < here; ++k) {
      const kernel::RowQuantParams& p = *widths[first + k].params;
      float sum = 0.0f;
      for (int64_t j = i; j < n; ++j) sum += g[j] * quant_math::quantize_nearest(x[j], p.lo, p.scale, p.levels);
      alignas(64) float lanes[kLanes];
      _mm512_store_ps(lanes, acc[k]);
      for (float a : lanes) sum += a;
      *widths[first + k].sum += sum;
    }
  }
}
#pragma GCC diagnostic pop
#endif

void check_shapes(const at::Tensor& x, const at::Tensor& g, size_t options) {
  if (x.dim() < 1 || !g.sizes().equals(x.sizes()))
    throw Error("option gradient: the gradient and the input differ in shape");
  if (options == 0) throw Error("option gradient: no options");
}

class OptionGradient : public torch::autograd::Function<OptionGradient> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& mask,
                            const std::vector<int64_t>& act_bits, bool snap_zero_point, double lo, double hi) {
    ctx->save_for_backward({x});
    ctx->saved_data["act_bits"] = act_bits;
    ctx->saved_data["snap"] = snap_zero_point;
    ctx->saved_data["lo"] = lo;
    ctx->saved_data["hi"] = hi;
    return x.view_as(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const auto bits64 = ctx->saved_data["act_bits"].toIntVector();
    const std::vector<int> bits(bits64.begin(), bits64.end());
    const bool snap = ctx->saved_data["snap"].toBool();
    const QuantRange range{static_cast<float>(ctx->saved_data["lo"].toDouble()),
                           static_cast<float>(ctx->saved_data["hi"].toDouble())};
    at::Tensor g = grads[0];
    at::Tensor mask_grad;
    if (g.defined()) mask_grad = option_inner_products(x, g, bits, range, snap);
    return {g, mask_grad, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// The same node with its range and widths in tensors on x's device (masked execution).
class RunningOptionGradient : public torch::autograd::Function<RunningOptionGradient> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& mask,
                            const at::Tensor& option_bits, const at::Tensor& range, bool snap_zero_point) {
    ctx->save_for_backward({x, option_bits, range});
    ctx->saved_data["snap"] = snap_zero_point;
    return x.view_as(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    at::Tensor g = grads[0];
    at::Tensor mask_grad;
    const bool snap = ctx->saved_data["snap"].toBool();
    if (g.defined()) mask_grad = device_quant::option_inner_products(saved[0], g, saved[1], saved[2], snap);
    return {g, mask_grad, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

void check_mask(const at::Tensor& x, const at::Tensor& mask, int64_t options) {
  if (mask.dim() != 2 || mask.size(0) != x.size(0) || mask.size(1) != options)
    throw Error("option gradient: mask must be [samples, options] = [" + std::to_string(x.size(0)) + ", " +
                std::to_string(options) + "]");
}

}  // namespace

at::Tensor attach_option_gradient_running(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& option_bits,
                                          bool snap_zero_point, const at::Tensor& runs) {
  check_mask(x, mask, option_bits.numel());
  at::Tensor range;
  {
    at::NoGradGuard no_grad;
    range = device_quant::range_of_running(x.detach(), runs);
  }
  return RunningOptionGradient::apply(x, mask, option_bits, range, snap_zero_point);
}

at::Tensor attach_option_gradient(const at::Tensor& x, const at::Tensor& mask, std::vector<int> act_bits,
                                  bool snap_zero_point, RangeAgreement* agreement) {
  check_mask(x, mask, static_cast<int64_t>(act_bits.size()));
  const std::vector<int64_t> bits(act_bits.begin(), act_bits.end());
  // The range is taken here rather than in backward: with data parallelism it is a collective, which the forward
  // pass orders the same way on every rank. Floats survive the round trip through double exactly.
  const QuantRange range = agreed_range(x.detach(), agreement);
  return OptionGradient::apply(x, mask, bits, snap_zero_point, static_cast<double>(range.lo),
                               static_cast<double>(range.hi));
}

at::Tensor option_inner_products(const at::Tensor& x_in, const at::Tensor& g_in, const std::vector<int>& act_bits,
                                 QuantRange range, bool snap_zero_point, OptionProductKernel implementation) {
  check_shapes(x_in, g_in, act_bits.size());
  if (!x_in.device().is_cpu() || x_in.scalar_type() != at::kFloat || g_in.scalar_type() != at::kFloat)
    return reference::option_inner_products(x_in, g_in, act_bits, range, snap_zero_point);
  const at::Tensor x = x_in.contiguous(), g = g_in.contiguous();
  const int64_t rows = x.size(0), row_len = rows > 0 ? x.numel() / rows : 0;
  const auto options = static_cast<int64_t>(act_bits.size());
  std::vector<kernel::RowQuantParams> params;
  for (int bits : act_bits) params.push_back(kernel::row_params(bits, range.lo, range.hi, snap_zero_point));
  // Options that share an activation width share their inner products (cifar-release's five options have three
  // widths): each is computed once, for the first option with its width, and copied to the others.
  std::vector<int64_t> same_as(static_cast<size_t>(options));
  for (int64_t k = 0; k < options; ++k) {
    same_as[static_cast<size_t>(k)] = k;
    for (int64_t j = 0; j < k; ++j)
      if (act_bits[static_cast<size_t>(j)] == act_bits[static_cast<size_t>(k)]) {
        same_as[static_cast<size_t>(k)] = j;
        break;
      }
  }
  at::Tensor out = at::empty({rows, options}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const bool quotients_usable = std::all_of(params.begin(), params.end(), [](const kernel::RowQuantParams& p) {
    return p.levels == 0.0f || simd::usable(p.scale);
  });
  const auto quantized_dots =
#if FRACTRAIN_OPTION_AVX512
      implementation == OptionProductKernel::Fastest && simd::cpu_runs_quotient() && quotients_usable
          ? quantized_dots_avx512
          :
#endif
          quantized_dots_portable;
  // One row per task: each sum is computed by one thread in a fixed order, whatever the thread count. Within a
  // row, every width's product over a span before the next span: the span's 2 x 16 KB stay in L1 for the widths
  // after the first (a whole row, 2 x 64 KB for 16 x 32 x 32, would be read from L2 once per width).
  constexpr int64_t kSpan = 4096;  // partial sums in float over a span, spans summed in double
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> sums(static_cast<size_t>(options));
    std::vector<QuantizedWidth> quantized;  // the distinct quantized widths, each computed once
    for (int64_t k = 0; k < options; ++k)
      if (same_as[static_cast<size_t>(k)] == k && params[k].levels != 0.0f)
        quantized.push_back({&params[k], &sums[static_cast<size_t>(k)]});
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = xp + r * row_len;
      const float* gr = gp + r * row_len;
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t i = 0; i < row_len; i += kSpan) {
        const int64_t n = std::min(kSpan, row_len - i);
        quantized_dots(xr + i, gr + i, n, quantized.data(), static_cast<int>(quantized.size()));
        for (int64_t k = 0; k < options; ++k)
          if (same_as[static_cast<size_t>(k)] == k && params[k].levels == 0.0f)
            sums[static_cast<size_t>(k)] += plain_dot(xr + i, gr + i, n);
      }
      for (int64_t k = 0; k < options; ++k)
        op[r * options + k] = static_cast<float>(sums[static_cast<size_t>(same_as[static_cast<size_t>(k)])]);
    }
  });
  return out;
}

namespace reference {
at::Tensor option_inner_products(const at::Tensor& x, const at::Tensor& g, const std::vector<int>& act_bits,
                                 QuantRange range, bool snap_zero_point) {
  QuantizeOptions options;
  options.snap_zero_point = snap_zero_point;
  std::vector<at::Tensor> columns;
  for (int bits : act_bits) {
    const at::Tensor q = bits == 0 ? x : reference::fake_quantize(x, bits, range, options);
    columns.push_back((g.to(at::kDouble) * q.to(at::kDouble)).flatten(1).sum(1));
  }
  return at::stack(columns, 1).to(x.scalar_type());
}
}  // namespace reference

}  // namespace fractrain
