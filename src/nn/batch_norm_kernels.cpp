#include "fractrain/nn/batch_norm_kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <mutex>

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

// The extremes of the planes a task wrote, each taken right after the plane was written (from L1, not memory).
class WrittenExtremes {
 public:
  void add_plane(const float* plane, int64_t n) {
    const kernel::MinMax m = kernel::serial_min_max(plane, n);
    if (m.lo != m.lo) {
      nan_ = true;
      return;
    }
    lo_ = std::min(lo_, m.lo);
    hi_ = std::max(hi_, m.hi);
  }
  void merge(const WrittenExtremes& other) {
    nan_ = nan_ || other.nan_;
    lo_ = std::min(lo_, other.lo_);
    hi_ = std::max(hi_, other.hi_);
  }
  kernel::MinMax result() const {
    if (nan_) return {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::quiet_NaN()};
    return {lo_, hi_};
  }

 private:
  float lo_ = std::numeric_limits<float>::infinity(), hi_ = -std::numeric_limits<float>::infinity();
  bool nan_ = false;
};

// body(first, last, extremes) over blocks of channels in parallel; with `written` not null, the extremes of every
// value the blocks wrote (`extremes` is null otherwise).
template <class Body>
void in_channel_blocks(NchwShape shape, kernel::MinMax* written, const Body& body) {
  std::mutex mutex;
  WrittenExtremes total;
  at::parallel_for(0, shape.channels, channel_grain(shape), [&](int64_t first, int64_t last) {
    WrittenExtremes part;
    body(first, last, written ? &part : nullptr);
    if (!written) return;
    std::lock_guard<std::mutex> lock(mutex);
    total.merge(part);
  });
  if (written) *written = total.result();
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

// scale (per sample, may be null) multiplies a[c]: the gradient dy * scale[n] of a BatchNorm whose output was scaled.
__attribute__((target_clones("avx512f", "default"))) void affine_of_channels(const float* dy, const float* scale,
                                                                             const float* x, NchwShape shape,
                                                                             const float* a, const float* b,
                                                                             const float* k, int64_t first,
                                                                             int64_t last, float* out,
                                                                             WrittenExtremes* extremes) {
  for (int64_t n = 0; n < shape.samples; ++n)
    for (int64_t c = first; c < last; ++c) {
      const int64_t offset = (n * shape.channels + c) * shape.plane;
      const float *g = dy + offset, *v = x + offset;
      float* o = out + offset;
      const float ac = scale ? a[c] * scale[n] : a[c], bc = b[c], kc = k[c];
      for (int64_t i = 0; i < shape.plane; ++i) o[i] = (ac * g[i] + bc * v[i]) + kc;
      if (extremes) extremes->add_plane(o, shape.plane);
    }
}

// ReLU as torch computes it (clamp_min): NaN stays NaN.
inline float relu(float v) { return v <= 0.0f ? 0.0f : v; }

// ReLU's gradient as torch's threshold_backward gives it, from the value the ReLU saw (or its output).
inline float relu_gradient(float dy, float seen) { return seen <= 0.0f ? 0.0f : dy; }

__attribute__((target_clones("avx512f", "default"))) void affine_relu_of_channels(
    const float* x, const float* residual, const float* scale, NchwShape shape, const float* alpha,
    const float* beta, int64_t first, int64_t last, float* out, WrittenExtremes* extremes) {
  for (int64_t n = 0; n < shape.samples; ++n)
    for (int64_t c = first; c < last; ++c) {
      const int64_t offset = (n * shape.channels + c) * shape.plane;
      const float* v = x + offset;
      float* o = out + offset;
      const float al = alpha[c], be = beta[c];
      if (scale) {
        const float* r = residual + offset;
        const float k = scale[n];
        for (int64_t i = 0; i < shape.plane; ++i) o[i] = relu((v[i] * al + be) * k + r[i]);
      } else if (residual) {
        const float* r = residual + offset;
        for (int64_t i = 0; i < shape.plane; ++i) o[i] = relu((v[i] * al + be) + r[i]);
      } else {
        for (int64_t i = 0; i < shape.plane; ++i) o[i] = relu(v[i] * al + be);
      }
      if (extremes) extremes->add_plane(o, shape.plane);
    }
}

// A plane's sums of g and g * (x - centre), g formed chunk by chunk by `gradient(i)` into `g_out` (or a buffer on
// the stack) and then summed in two loops (see gradient_sums_of_channels for why two).
// The sums are multiplied by `scale` (the plane's sample's output scale) once per chunk.
template <class Gradient>
__attribute__((always_inline)) inline void masked_plane_sums(int64_t plane, const float* v, float centre,
                                                             const Gradient& gradient, float* g_out, double& total,
                                                             double& centred, double scale = 1.0) {
  constexpr int64_t kChunk = 1024;
  float buffer[kChunk];
  for (int64_t start = 0; start < plane; start += kChunk) {
    const int64_t length = std::min(kChunk, plane - start);
    float* g = g_out ? g_out + start : buffer;
    for (int64_t i = 0; i < length; ++i) g[i] = gradient(start + i);
    const float* w = v + start;
    total += scale * plane_total(length, [g](int64_t i) { return g[i]; });
    centred += scale * plane_total(length, [g, w, centre](int64_t i) { return g[i] * (w[i] - centre); });
  }
}

__attribute__((target_clones("avx512f", "default"))) void relu_gradient_sums_of_channels(
    const float* dy, const float* x, NchwShape shape, const float* alpha, const float* beta, const double* mean,
    int64_t first, int64_t last, double* sum_g, double* sum_g_centered) {
  for (int64_t c = first; c < last; ++c) {
    const float centre = static_cast<float>(mean[c]), al = alpha[c], be = beta[c];
    double total = 0.0, centred = 0.0;
    for (int64_t n = 0; n < shape.samples; ++n) {
      const int64_t offset = (n * shape.channels + c) * shape.plane;
      const float *d = dy + offset, *v = x + offset;
      masked_plane_sums(
          shape.plane, v, centre, [d, v, al, be](int64_t i) { return relu_gradient(d[i], v[i] * al + be); }, nullptr,
          total, centred);
    }
    sum_g[c] = total;
    sum_g_centered[c] = centred;
  }
}

__attribute__((target_clones("avx512f", "default"))) void masked_gradient_sums_of_channels(
    const float* dy, const float* y, const float* x, NchwShape shape, const double* mean, const OutputScale& scale,
    int64_t first, int64_t last, float* g, double* sum_g, double* sum_g_centered) {
  for (int64_t c = first; c < last; ++c) {
    const float centre = static_cast<float>(mean[c]);
    double total = 0.0, centred = 0.0;
    for (int64_t n = 0; n < shape.samples; ++n) {
      const int64_t offset = (n * shape.channels + c) * shape.plane;
      const float *d = dy + offset, *o = y + offset, *v = x + offset;
      float* gn = g + offset;
      masked_plane_sums(
          shape.plane, v, centre, [d, o](int64_t i) { return relu_gradient(d[i], o[i]); }, gn, total, centred,
          scale.values ? static_cast<double>(scale.values[n]) : 1.0);
      if (scale.gradient_terms) {
        const float al = scale.alpha[c], be = scale.beta[c];
        scale.gradient_terms[n * shape.channels + c] =
            plane_total(shape.plane, [gn, v, al, be](int64_t i) { return gn[i] * (v[i] * al + be); });
      }
    }
    sum_g[c] = total;
    sum_g_centered[c] = centred;
  }
}

__attribute__((target_clones("avx512f", "default"))) void relu_affine_of_channels(
    const float* dy, const float* x, NchwShape shape, const float* alpha, const float* beta, const float* a,
    const float* b, const float* k, int64_t first, int64_t last, float* out, WrittenExtremes* extremes) {
  for (int64_t n = 0; n < shape.samples; ++n)
    for (int64_t c = first; c < last; ++c) {
      const int64_t offset = (n * shape.channels + c) * shape.plane;
      const float *d = dy + offset, *v = x + offset;
      float* o = out + offset;
      const float al = alpha[c], be = beta[c], ac = a[c], bc = b[c], kc = k[c];
      for (int64_t i = 0; i < shape.plane; ++i) o[i] = (ac * relu_gradient(d[i], v[i] * al + be) + bc * v[i]) + kc;
      if (extremes) extremes->add_plane(o, shape.plane);
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
    affine_of_channels(dy, nullptr, x, shape, a, b, k, first, last, out, nullptr);
  });
}

void scaled_affine_combination(const float* dy, const float* scale, const float* x, NchwShape shape, const float* a,
                               const float* b, const float* k, float* out, kernel::MinMax* written) {
  in_channel_blocks(shape, written, [&](int64_t first, int64_t last, WrittenExtremes* extremes) {
    affine_of_channels(dy, scale, x, shape, a, b, k, first, last, out, extremes);
  });
}

void channel_affine_relu(const float* x, const float* residual, const float* scale, NchwShape shape,
                         const float* alpha, const float* beta, float* out, kernel::MinMax* written) {
  in_channel_blocks(shape, written, [&](int64_t first, int64_t last, WrittenExtremes* extremes) {
    affine_relu_of_channels(x, residual, scale, shape, alpha, beta, first, last, out, extremes);
  });
}

void relu_gradient_sums(const float* dy, const float* x, NchwShape shape, const float* alpha, const float* beta,
                        const double* mean, double* sum_g, double* sum_g_centered) {
  at::parallel_for(0, shape.channels, channel_grain(shape), [&](int64_t first, int64_t last) {
    relu_gradient_sums_of_channels(dy, x, shape, alpha, beta, mean, first, last, sum_g, sum_g_centered);
  });
}

void relu_affine_combination(const float* dy, const float* x, NchwShape shape, const float* alpha, const float* beta,
                             const float* a, const float* b, const float* k, float* out, kernel::MinMax* written) {
  in_channel_blocks(shape, written, [&](int64_t first, int64_t last, WrittenExtremes* extremes) {
    relu_affine_of_channels(dy, x, shape, alpha, beta, a, b, k, first, last, out, extremes);
  });
}

void masked_gradient_sums(const float* dy, const float* y, const float* x, NchwShape shape, const double* mean,
                          const OutputScale& scale, float* g, double* sum_g, double* sum_g_centered) {
  at::parallel_for(0, shape.channels, channel_grain(shape), [&](int64_t first, int64_t last) {
    masked_gradient_sums_of_channels(dy, y, x, shape, mean, scale, first, last, g, sum_g, sum_g_centered);
  });
}

}  // namespace fractrain::batch_norm_kernel
