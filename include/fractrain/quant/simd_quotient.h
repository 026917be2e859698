#pragma once
// The quantizer's quotient (x - lo) / s on AVX-512 without a division. A 512-bit division costs about 10 cycles
// every 16 elements, which made the quantizer's passes division-bound; this costs a multiply and two FMAs.
//
// With y = RN(1/s) (correctly rounded, computed once per span), q0 = RN(d y), the residual r = d - q0 s (exact in
// one FMA) and q = RN(q0 + r y) is the correctly rounded quotient RN(d / s): the correction step of Markstein's
// division. Markstein's theorem covers it when q0 is within an ulp of d / s; RN(d y) can be up to about 1.5 ulp
// off (d / s in the lower part of a binade), so the claim rests on checks against the division as well: all 2^23
// mantissas of d in [1, 4) for 20,000 random divisors (and in [1, 2) for those divisors times 0.001), and for the
// 4,000 divisors whose significands are nearest 1 and 2: no difference. Where q is NaN (d infinite, or d y
// overflowing for a huge d / s) q0 is the quotient, the division's infinity (both clamp to the same code).
// `usable(s)` must hold for the span's s: a normal, finite reciprocal (s below 2^126; the quantizer's s is at
// least 1e-8); otherwise callers divide. NaN in d or s gives NaN. Subnormal quotients may differ from the
// division's in their last bits: the quantizer rounds them to the code 0 (|d / s| < 2^-126 is far below 0.5), so
// codes and values agree. A d of -0 gives +0 (the division: -0), which the quantizer turns into the same value
// Q = 0 s + lo.
#include <cmath>

#include "fractrain/util/cpu_features.h"

namespace fractrain::simd {
// Whether `quotient` may stand in for the division by s (see above).
inline bool usable(float s) { return std::isnormal(1.0f / s) && std::isfinite(s); }
// Whether this CPU runs `quotient`: AVX-512F and FMA (a virtual machine may hide FMA).
inline bool cpu_runs_quotient() { return cpu_has_avx512f() && cpu_has_fma(); }
}  // namespace fractrain::simd

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace fractrain::simd {

__attribute__((target("avx512f,fma"), always_inline)) inline __m512 quotient(__m512 d, __m512 s, __m512 inverse) {
  const __m512 q0 = _mm512_mul_ps(d, inverse);
  const __m512 r = _mm512_fnmadd_ps(q0, s, d);
  const __m512 q = _mm512_fmadd_ps(r, inverse, q0);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(q, q, _CMP_UNORD_Q), q, q0);
}

// clamp_to_levels (quant_math.h), `t < 0 ? 0 : t` then `levels < t ? levels : t`: max(0, t) and min(levels, t)
// return their second operand when the comparison is false, so a NaN t and -0 pass through as there.
__attribute__((target("avx512f"), always_inline)) inline __m512 clamp_to_levels(__m512 t, __m512 levels) {
  return _mm512_min_ps(levels, _mm512_max_ps(_mm512_setzero_ps(), t));
}

// round_half_even (std::nearbyint in the default rounding mode).
__attribute__((target("avx512f"), always_inline)) inline __m512 round_half_even(__m512 t) {
  return _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

}  // namespace fractrain::simd
#endif
