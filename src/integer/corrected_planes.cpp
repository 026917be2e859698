#include "fractrain/integer/corrected_planes.h"

#include <algorithm>

#include "conv_taps.h"  // FRACTRAIN_INTEGER_CLONES
#include "fractrain/util/cpu_features.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace fractrain::integer {
namespace {

// Positions [p0, p0 + n) of channels [c0, c1): the loop of corrected_planes_portable.
FRACTRAIN_INTEGER_CLONES
void correct_tile(const int32_t* acc, const double* box, const double* weight_terms, double on, const double* oc,
                  const float* scale, const float* bias, int64_t P, int64_t C, int64_t p0, int64_t n, int64_t c0,
                  int64_t c1, float* out) {
  const int32_t* a = acc + p0 * C;
  for (int64_t c = c0; c < c1; ++c) {
    const double* terms = weight_terms + c * P + p0;
    const double* bx = box + p0;
    float* o = out + c * P + p0;
    for (int64_t j = 0; j < n; ++j) {
      const double exact = static_cast<double>(a[j * C + c]) + oc[c] * bx[j] + on * terms[j];
      o[j] = static_cast<float>(exact) * scale[c] + bias[c];
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12 takes the undefined placeholder vectors inside the AVX-512 intrinsics for uninitialised variables (GCC
// bug 105593); the warnings are false.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define FRACTRAIN_AVX512_TARGET __attribute__((target("avx512f")))
namespace native {
#include "corrected_planes_avx512.inc"
}  // namespace native
#undef FRACTRAIN_AVX512_TARGET

#pragma GCC diagnostic pop
#endif

}  // namespace

void corrected_planes_portable(const int32_t* acc, const double* box, const double* weight_terms, double on,
                               const double* oc, const float* scale, const float* bias, int64_t P, int64_t C,
                               float* out) {
  constexpr int64_t kTile = 16;  // the sums of 16 positions are read across the tile, from L1
  for (int64_t p0 = 0; p0 < P; p0 += kTile)
    correct_tile(acc, box, weight_terms, on, oc, scale, bias, P, C, p0, std::min(kTile, P - p0), 0, C, out);
}

void corrected_planes(const int32_t* acc, const double* box, const double* weight_terms, double on, const double* oc,
                      const float* scale, const float* bias, int64_t P, int64_t C, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx512f())
    return native::corrected_planes_avx512(acc, box, weight_terms, on, oc, scale, bias, P, C, out);
#endif
  corrected_planes_portable(acc, box, weight_terms, on, oc, scale, bias, P, C, out);
}

}  // namespace fractrain::integer

// The AVX-512 form once more, after SIMDe's native aliases: from here on `_mm512_add_pd`, `__m512d` and the rest
// name SIMDe's portable implementations (this file is not compiled for AVX-512, so SIMDe does not forward them to
// the instructions). Last in the file, so that the aliases reach nothing else.
#ifdef FRACTRAIN_HAVE_SIMDE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include "simde_missing.h"

namespace fractrain::integer {
namespace {
#define FRACTRAIN_AVX512_TARGET
namespace emulated {
// SIMDe 0.7.4 has no alias for these two (a later version may).
#ifndef _mm512_cvtepi32_pd
#define _mm512_cvtepi32_pd(a) simde_missing::mm512_cvtepi32_pd(a)
#endif
#ifndef _mm512_cvtpd_ps
#define _mm512_cvtpd_ps(a) simde_missing::mm512_cvtpd_ps(a)
#endif
#include "corrected_planes_avx512.inc"
}  // namespace emulated
#undef FRACTRAIN_AVX512_TARGET
}  // namespace
}  // namespace fractrain::integer
#endif

namespace fractrain::integer {

bool corrected_planes_emulated(const int32_t* acc, const double* box, const double* weight_terms, double on,
                               const double* oc, const float* scale, const float* bias, int64_t P, int64_t C,
                               float* out) {
#ifdef FRACTRAIN_HAVE_SIMDE
  emulated::corrected_planes_avx512(acc, box, weight_terms, on, oc, scale, bias, P, C, out);
  return true;
#else
  return false;
#endif
}

}  // namespace fractrain::integer
