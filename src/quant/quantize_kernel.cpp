// Fused quantization kernel. Compiled with -ffp-contract=off (see CMakeLists) so that `t * s + lo` is not
// fused into an FMA: the kernel must round exactly like the tensor-op reference.
#include "fractrain/quant/quantize_kernel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace fractrain::kernel {
namespace {

constexpr int64_t kSpan = 1024;       // elements processed per inner call (noise buffer on the stack)
constexpr int64_t kGrain = 1 << 15;   // elements per parallel task

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FRACTRAIN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FRACTRAIN_CLONES
#endif

FRACTRAIN_CLONES
void quantize_span(const float* x, float* y, int64_t n, float lo, float s, float levels, const float* noise) {
  if (noise) {
    for (int64_t i = 0; i < n; ++i) {
      float t = (x[i] - lo) / s + noise[i];
      t = std::min(std::max(t, 0.0f), levels);
      y[i] = std::nearbyint(t) * s + lo;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      float t = (x[i] - lo) / s;
      t = std::min(std::max(t, 0.0f), levels);
      y[i] = std::nearbyint(t) * s + lo;
    }
  }
}

// noise[i] = U(-0.5, 0.5) for flat indices [begin, begin + n), four values per Philox call.
void fill_noise(const PhiloxStream& stream, int64_t begin, int64_t n, float* out) {
  int64_t i = 0;
  uint64_t index = static_cast<uint64_t>(begin);
  while (i < n) {
    const Philox4x32 r = stream.block(index >> 2);
    for (unsigned lane = index & 3; lane < 4 && i < n; ++lane, ++i, ++index)
      out[i] = static_cast<float>(r.v[lane] >> 8) * (1.0f / 16777216.0f) - 0.5f;
  }
}

}  // namespace

RowQuantParams row_params(int bits, float lo, float hi, bool snap_zero_point) {
  RowQuantParams p;
  if (bits <= 0) return p;
  p.levels = static_cast<float>((uint64_t{1} << bits) - 1);
  p.scale = std::max((hi - lo) / p.levels, 1e-8f);
  p.lo = snap_zero_point ? std::nearbyint(lo / p.scale) * p.scale : lo;
  return p;
}

void quantize_rows(const float* x, float* y, int64_t rows, int64_t row_len, const RowQuantParams* params,
                   const PhiloxStream* noise) {
  const int64_t total = rows * row_len;
  at::parallel_for(0, total, kGrain, [&](int64_t begin, int64_t end) {
    float noise_buffer[kSpan];
    int64_t i = begin;
    while (i < end) {
      const int64_t row = i / row_len;
      const int64_t row_end = std::min(end, (row + 1) * row_len);
      const int64_t n = std::min(kSpan, row_end - i);
      const RowQuantParams& p = params[row];
      if (p.levels == 0.0f) {
        std::copy(x + i, x + i + n, y + i);
      } else {
        if (noise) fill_noise(*noise, i, n, noise_buffer);
        quantize_span(x + i, y + i, n, p.lo, p.scale, p.levels, noise ? noise_buffer : nullptr);
      }
      i += n;
    }
  });
}

}  // namespace fractrain::kernel
