#include "fractrain/nn/batch_norm_kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace fractrain::batch_norm_kernel {
namespace {

// 16 floats: one AVX-512 register, four SSE ones; GCC vectorises the lane loops below for either.
constexpr int kLanes = 16;

// Channels per parallel task: small shapes stay on one thread.
int64_t channel_grain(NchwShape shape) {
  const int64_t per_channel = std::max<int64_t>(1, shape.samples * shape.plane);
  return std::max<int64_t>(1, (int64_t{1} << 15) / per_channel);
}

// The sum of term(i) for i in [0, n): kLanes float partial sums (lane l takes i = l mod kLanes), then added in
// float64 lane by lane. Fixed order for a given n.
template <class Term>
__attribute__((always_inline)) inline double plane_total(int64_t n, const Term& term) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += term(i + l);
  for (int l = 0; i + l < n; ++l) lanes[l] += term(i + l);
  double total = 0.0;
  for (float lane : lanes) total += lane;
  return total;
}

// The serial workers, one clone per instruction set (GCC picks at load time): AVX-512 where the CPU has it.
__attribute__((target_clones("avx512f", "default"))) void moments_of_channels(const float* x, NchwShape shape,
                                                                              int64_t first, int64_t last,
                                                                              double* mean, double* m2) {
  const double count = static_cast<double>(shape.samples * shape.plane);
  for (int64_t c = first; c < last; ++c) {
    double sum = 0.0;
    for (int64_t n = 0; n < shape.samples; ++n) {
      const float* p = x + (n * shape.channels + c) * shape.plane;
      sum += plane_total(shape.plane, [p](int64_t i) { return p[i]; });
    }
    mean[c] = count > 0 ? sum / count : 0.0;
    const float centre = static_cast<float>(mean[c]);
    double squares = 0.0;
    for (int64_t n = 0; n < shape.samples; ++n) {
      const float* p = x + (n * shape.channels + c) * shape.plane;
      squares += plane_total(shape.plane, [p, centre](int64_t i) {
        const float d = p[i] - centre;
        return d * d;
      });
    }
    // The deviations were taken from the float-rounded mean: remove that offset's share exactly as the
    // parallel-axis theorem gives it (sum (x - m')^2 = m2 + count (m - m')^2).
    const double offset = mean[c] - static_cast<double>(centre);
    m2[c] = std::max(0.0, squares - count * offset * offset);
  }
}

__attribute__((target_clones("avx512f", "default"))) void gradient_sums_of_channels(
    const float* dy, const float* x, NchwShape shape, const double* mean, int64_t first, int64_t last,
    double* sum_dy, double* sum_dy_centered) {
  for (int64_t c = first; c < last; ++c) {
    const float centre = static_cast<float>(mean[c]);
    double total = 0.0, centred = 0.0;
    for (int64_t n = 0; n < shape.samples; ++n) {
      const int64_t offset = (n * shape.channels + c) * shape.plane;
      const float *g = dy + offset, *v = x + offset;
      // Two passes over dy: GCC vectorises a single sum per loop, not two side by side (measured 3x slower).
      total += plane_total(shape.plane, [g](int64_t i) { return g[i]; });
      centred += plane_total(shape.plane, [g, v, centre](int64_t i) { return g[i] * (v[i] - centre); });
    }
    sum_dy[c] = total;
    sum_dy_centered[c] = centred;
  }
}

__attribute__((target_clones("avx512f", "default"))) void affine_of_channels(const float* dy, const float* x,
                                                                             NchwShape shape, const float* a,
                                                                             const float* b, const float* k,
                                                                             int64_t first, int64_t last,
                                                                             float* out) {
  for (int64_t n = 0; n < shape.samples; ++n)
    for (int64_t c = first; c < last; ++c) {
      const int64_t offset = (n * shape.channels + c) * shape.plane;
      const float *g = dy + offset, *v = x + offset;
      float* o = out + offset;
      const float ac = a[c], bc = b[c], kc = k[c];
      for (int64_t i = 0; i < shape.plane; ++i) o[i] = (ac * g[i] + bc * v[i]) + kc;
    }
}

}  // namespace

void channel_moments(const float* x, NchwShape shape, double* mean, double* m2) {
  at::parallel_for(0, shape.channels, channel_grain(shape),
                   [&](int64_t first, int64_t last) { moments_of_channels(x, shape, first, last, mean, m2); });
}

void gradient_sums(const float* dy, const float* x, NchwShape shape, const double* mean, double* sum_dy,
                   double* sum_dy_centered) {
  at::parallel_for(0, shape.channels, channel_grain(shape), [&](int64_t first, int64_t last) {
    gradient_sums_of_channels(dy, x, shape, mean, first, last, sum_dy, sum_dy_centered);
  });
}

void channel_affine_combination(const float* dy, const float* x, NchwShape shape, const float* a, const float* b,
                                const float* k, float* out) {
  at::parallel_for(0, shape.channels, channel_grain(shape), [&](int64_t first, int64_t last) {
    affine_of_channels(dy, x, shape, a, b, k, first, last, out);
  });
}

}  // namespace fractrain::batch_norm_kernel
