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

// The 16 x 16 int32 block at `a` (16 rows of positions, `stride` apart; 16 channels each) transposed: columns[k]
// holds channel k's 16 positions. Three rounds of unpacks and 128-bit lane shuffles.
__attribute__((target("avx512f"))) void transpose_16x16(const int32_t* a, int64_t stride, __m512i columns[16]) {
  __m512i r[16], t[16];
  for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_si512(a + j * stride);
  for (int j = 0; j < 16; j += 2) {
    t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
    t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
  }
  for (int j = 0; j < 16; j += 4) {
    r[j] = _mm512_unpacklo_epi64(t[j], t[j + 2]);
    r[j + 1] = _mm512_unpackhi_epi64(t[j], t[j + 2]);
    r[j + 2] = _mm512_unpacklo_epi64(t[j + 1], t[j + 3]);
    r[j + 3] = _mm512_unpackhi_epi64(t[j + 1], t[j + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm512_shuffle_i32x4(r[j], r[j + 4], 0x88);
    t[j + 4] = _mm512_shuffle_i32x4(r[j], r[j + 4], 0xdd);
    t[j + 8] = _mm512_shuffle_i32x4(r[j + 8], r[j + 12], 0x88);
    t[j + 12] = _mm512_shuffle_i32x4(r[j + 8], r[j + 12], 0xdd);
  }
  for (int j = 0; j < 8; ++j) {
    columns[j] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0x88);
    columns[j + 8] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0xdd);
  }
}

// Whole tiles of 16 positions x 16 channels in registers: the sums transposed, the exact sums formed in two
// halves of 8 doubles, rounded to float, scaled and stored as one run of 16 floats per channel. The rest of the
// plane (channels beyond the last multiple of 16, the last positions) goes through correct_tile.
__attribute__((target("avx512f"))) void corrected_planes_avx512(const int32_t* acc, const double* box,
                                                                const double* weight_terms, double on,
                                                                const double* oc, const float* scale,
                                                                const float* bias, int64_t P, int64_t C, float* out) {
  const int64_t whole_channels = C / 16 * 16;
  const __m512d offset_n = _mm512_set1_pd(on);
  int64_t p0 = 0;
  for (; p0 + 16 <= P; p0 += 16) {
    const __m512d box_lo = _mm512_loadu_pd(box + p0), box_hi = _mm512_loadu_pd(box + p0 + 8);
    for (int64_t c0 = 0; c0 < whole_channels; c0 += 16) {
      __m512i columns[16];
      transpose_16x16(acc + p0 * C + c0, C, columns);
      for (int k = 0; k < 16; ++k) {
        const int64_t c = c0 + k;
        const __m512d offset_c = _mm512_set1_pd(oc[c]);
        const double* terms = weight_terms + c * P + p0;
        __m512d lo = _mm512_cvtepi32_pd(_mm512_castsi512_si256(columns[k]));
        __m512d hi = _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(columns[k], 1));
        lo = _mm512_add_pd(_mm512_add_pd(lo, _mm512_mul_pd(offset_c, box_lo)),
                           _mm512_mul_pd(offset_n, _mm512_loadu_pd(terms)));
        hi = _mm512_add_pd(_mm512_add_pd(hi, _mm512_mul_pd(offset_c, box_hi)),
                           _mm512_mul_pd(offset_n, _mm512_loadu_pd(terms + 8)));
        const __m256 lo_f = _mm512_cvtpd_ps(lo), hi_f = _mm512_cvtpd_ps(hi);
        __m512 values = _mm512_castpd_ps(
            _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo_f)), _mm256_castps_pd(hi_f), 1));
        values = _mm512_add_ps(_mm512_mul_ps(values, _mm512_set1_ps(scale[c])), _mm512_set1_ps(bias[c]));
        _mm512_storeu_ps(out + c * P + p0, values);
      }
    }
    correct_tile(acc, box, weight_terms, on, oc, scale, bias, P, C, p0, 16, whole_channels, C, out);
  }
  if (p0 < P) correct_tile(acc, box, weight_terms, on, oc, scale, bias, P, C, p0, P - p0, 0, C, out);
}

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
  if (cpu_has_avx512f()) return corrected_planes_avx512(acc, box, weight_terms, on, oc, scale, bias, P, C, out);
#endif
  corrected_planes_portable(acc, box, weight_terms, on, oc, scale, bias, P, C, out);
}

}  // namespace fractrain::integer
