#pragma once
// The quantizer's per-element arithmetic (DESIGN.md 4.1), written once for the CPU kernels
// (src/quant/quantize_kernel.cpp, src/nn/option_gradient.cpp) and the CUDA kernels (src/cuda). The same operations
// in the same order give the same floats on both devices provided that
//  - neither side contracts `t * s + lo` into a fused multiply-add: the CPU sources are compiled with
//    -ffp-contract=off, the CUDA ones with --fmad=false;
//  - division is IEEE (nvcc's default -prec-div=true; never --use_fast_math, which also flushes denormals);
//  - rounding is half to even: std::nearbyint on the host and rintf on the device, both in the default mode;
//  - clamps are the ternaries std::max/std::min compute (a NaN passes through, as in the reference; fmaxf
//    would turn it into a number).
// Only <cstdint> and the Philox header are included: CUDA sources include this without LibTorch.
#include <cstdint>

#include "fractrain/random/philox_block.h"
#include "fractrain/util/host_device.h"

#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

namespace fractrain::quant_math {

struct RowQuantParams {
  float lo = 0.0f;      // zero point (possibly snapped)
  float scale = 1.0f;   // s
  float levels = 0.0f;  // 2^b - 1; 0 means copy the row unchanged
};

FRACTRAIN_HD float round_half_even(float t) {
#if defined(__CUDA_ARCH__)
  return rintf(t);
#else
  return std::nearbyint(t);
#endif
}

// min(max(t, 0), levels) exactly as std::max / std::min evaluate it.
FRACTRAIN_HD float clamp_to_levels(float t, float levels) {
  t = t < 0.0f ? 0.0f : t;
  return levels < t ? levels : t;
}

// s = max((hi - lo) / (2^b - 1), 1e-8) and the zero point, snapped to the grid of s when asked, for `bits` over
// [lo, hi]; bits <= 0 (full precision) gives levels 0.
FRACTRAIN_HD RowQuantParams row_params(int bits, float lo, float hi, bool snap_zero_point) {
  RowQuantParams p;
  if (bits <= 0) return p;
  p.levels = static_cast<float>((uint64_t{1} << bits) - 1);
  const float s = (hi - lo) / p.levels;
  p.scale = s < 1e-8f ? 1e-8f : s;
  p.lo = snap_zero_point ? round_half_even(lo / p.scale) * p.scale : lo;
  return p;
}

// The integer code t in [0, levels] of x: nearest rounding, and stochastic rounding with a uniform u in
// [-0.5, 0.5) added before the rounding.
FRACTRAIN_HD float code_nearest(float x, float lo, float s, float levels) {
  return round_half_even(clamp_to_levels((x - lo) / s, levels));
}
FRACTRAIN_HD float code_stochastic(float x, float lo, float s, float levels, float u) {
  return round_half_even(clamp_to_levels((x - lo) / s + u, levels));
}

// Q(x) = t s + lo.
FRACTRAIN_HD float quantize_nearest(float x, float lo, float s, float levels) {
  return code_nearest(x, lo, s, levels) * s + lo;
}
FRACTRAIN_HD float quantize_stochastic(float x, float lo, float s, float levels, float u) {
  return code_stochastic(x, lo, s, levels, u) * s + lo;
}

// A Philox word as the stochastic-rounding offset: 24 random bits, uniform in [-0.5, 0.5), exact in float.
FRACTRAIN_HD float centered_uniform(uint32_t word) {
  return static_cast<float>(word >> 8) * (1.0f / 16777216.0f) - 0.5f;
}

// The running activation range (lo, span) after a training batch with range [batch_lo, batch_hi]: the first batch
// (seen == 0) initialises it, so early evaluations never use a [0, 0] range; later ones move it by `momentum`.
FRACTRAIN_HD void update_running_range(float* lo, float* span, float* seen, float batch_lo, float batch_hi,
                                       float momentum) {
  const float batch_span = batch_hi - batch_lo;
  if (!(*seen > 0.0f)) {
    *lo = batch_lo;
    *span = batch_span;
    *seen = 1.0f;
    return;
  }
  *lo = *lo * momentum + batch_lo * (1.0f - momentum);
  *span = *span * momentum + batch_span * (1.0f - momentum);
}

}  // namespace fractrain::quant_math
