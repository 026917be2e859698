#include "fractrain/integer/corrected_planes.h"

#include <algorithm>
#include <cstdlib>

#include "conv_taps.h"  // FRACTRAIN_INTEGER_CLONES
#include "fractrain/util/cpu_features.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace fractrain::integer {
namespace {

// Positions [p0, p0 + n) of channels [c0, c1): the loop of corrected_planes_portable. The sum is formed in uint32,
// whose wrap-around is defined, then read as int32: the residue modulo 2^32 that the vector forms' int32 lanes hold.
FRACTRAIN_INTEGER_CLONES
void correct_tile(const int32_t* acc, const int32_t* box, const int32_t* weight_terms, int32_t on, const int32_t* oc,
                  const float* scale, const float* bias, int64_t P, int64_t C, int64_t p0, int64_t n, int64_t c0,
                  int64_t c1, float* out) {
  const int32_t* a = acc + p0 * C;
  const uint32_t offset_n = static_cast<uint32_t>(on);
  for (int64_t c = c0; c < c1; ++c) {
    const int32_t* terms = weight_terms + c * P + p0;
    const int32_t* bx = box + p0;
    const uint32_t offset_c = static_cast<uint32_t>(oc[c]);
    float* o = out + c * P + p0;
    for (int64_t j = 0; j < n; ++j) {
      const uint32_t sum = static_cast<uint32_t>(a[j * C + c]) + offset_c * static_cast<uint32_t>(bx[j]) +
                           offset_n * static_cast<uint32_t>(terms[j]);
      o[j] = static_cast<float>(static_cast<int32_t>(sum)) * scale[c] + bias[c];
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

// The AVX2 form (CPUs without AVX-512, on which integer execution runs up to 7-bit codes): the AVX-512 form's plan on
// tiles of 8 positions x 8 channels, transposed in registers by the classic unpack / 128-bit permute sequence. No FMA
// (not in the target): the float scale and bias are a multiply and an add, as in correct_tile's AVX2 clone; the
// int32 sums are residues modulo 2^32, so their order does not matter.
#define FRACTRAIN_AVX2 __attribute__((target("avx2")))

// The 8 x 8 int32 block at `a` (8 rows of positions, `stride` apart) transposed: columns[k] holds channel k's 8
// positions.
FRACTRAIN_AVX2 void transpose_8x8(const int32_t* a, int64_t stride, __m256i columns[8]) {
  __m256i r[8], t[8];
  for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + j * stride));
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm256_unpacklo_epi32(r[j], r[j + 1]);
    t[j + 1] = _mm256_unpackhi_epi32(r[j], r[j + 1]);
  }
  for (int j = 0; j < 8; j += 4) {
    r[j] = _mm256_unpacklo_epi64(t[j], t[j + 2]);      // channels 0 and 4 of rows j..j+3
    r[j + 1] = _mm256_unpackhi_epi64(t[j], t[j + 2]);  // 1 and 5
    r[j + 2] = _mm256_unpacklo_epi64(t[j + 1], t[j + 3]);  // 2 and 6
    r[j + 3] = _mm256_unpackhi_epi64(t[j + 1], t[j + 3]);  // 3 and 7
  }
  for (int k = 0; k < 4; ++k) {
    columns[k] = _mm256_permute2x128_si256(r[k], r[k + 4], 0x20);
    columns[k + 4] = _mm256_permute2x128_si256(r[k], r[k + 4], 0x31);
  }
}

FRACTRAIN_AVX2 void corrected_planes_avx2_tiles(const int32_t* acc, const int32_t* box, const int32_t* weight_terms,
                                                int32_t on, const int32_t* oc, const float* scale, const float* bias,
                                                int64_t P, int64_t C, float* out) {
  const int64_t whole_channels = C / 8 * 8;
  const __m256i offset_n = _mm256_set1_epi32(on);
  const bool with_terms = on != 0;
  int64_t p0 = 0;
  for (; p0 + 8 <= P; p0 += 8) {
    const __m256i box_p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(box + p0));
    for (int64_t c0 = 0; c0 < whole_channels; c0 += 8) {
      __m256i columns[8];
      transpose_8x8(acc + p0 * C + c0, C, columns);
      for (int k = 0; k < 8; ++k) {
        const int64_t c = c0 + k;
        __m256i sum = _mm256_add_epi32(columns[k], _mm256_mullo_epi32(_mm256_set1_epi32(oc[c]), box_p));
        if (with_terms) {  // as in the AVX-512 form
          const __m256i terms = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(weight_terms + c * P + p0));
          sum = _mm256_add_epi32(sum, _mm256_mullo_epi32(offset_n, terms));
        }
        const __m256 values =
            _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(scale[c])), _mm256_set1_ps(bias[c]));
        _mm256_storeu_ps(out + c * P + p0, values);
      }
    }
    correct_tile(acc, box, weight_terms, on, oc, scale, bias, P, C, p0, 8, whole_channels, C, out);
  }
  if (p0 < P) correct_tile(acc, box, weight_terms, on, oc, scale, bias, P, C, p0, P - p0, 0, C, out);
}
#undef FRACTRAIN_AVX2
#endif

}  // namespace

bool corrected_terms_below(int64_t terms, int64_t max_offset_a, int64_t max_offset_b, int64_t limit) {
  __extension__ using int128 = __int128;  // terms * a * b can pass 2^63 (offsets reach 2^25)
  constexpr int64_t kCode = 255;          // the largest magnitude of a stored code, uint8 or int8
  const int64_t a = kCode + std::abs(max_offset_a), b = kCode + std::abs(max_offset_b);
  return static_cast<int128>(terms) * a * b < limit;
}

bool corrections_fit_int32(int64_t terms, int64_t max_offset_a, int64_t max_offset_b) {
  return corrected_terms_below(terms, max_offset_a, max_offset_b, int64_t{1} << 31);
}

void corrected_planes_portable(const int32_t* acc, const int32_t* box, const int32_t* weight_terms, int32_t on,
                               const int32_t* oc, const float* scale, const float* bias, int64_t P, int64_t C,
                               float* out) {
  constexpr int64_t kTile = 16;  // the sums of 16 positions are read across the tile, from L1
  for (int64_t p0 = 0; p0 < P; p0 += kTile)
    correct_tile(acc, box, weight_terms, on, oc, scale, bias, P, C, p0, std::min(kTile, P - p0), 0, C, out);
}

void corrected_planes(const int32_t* acc, const int32_t* box, const int32_t* weight_terms, int32_t on,
                      const int32_t* oc, const float* scale, const float* bias, int64_t P, int64_t C, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx512f())
    return native::corrected_planes_avx512(acc, box, weight_terms, on, oc, scale, bias, P, C, out);
#endif
  if (!corrected_planes_avx2(acc, box, weight_terms, on, oc, scale, bias, P, C, out))
    corrected_planes_portable(acc, box, weight_terms, on, oc, scale, bias, P, C, out);
}

bool corrected_planes_avx2(const int32_t* acc, const int32_t* box, const int32_t* weight_terms, int32_t on,
                           const int32_t* oc, const float* scale, const float* bias, int64_t P, int64_t C, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx2()) {
    corrected_planes_avx2_tiles(acc, box, weight_terms, on, oc, scale, bias, P, C, out);
    return true;
  }
#endif
  return false;
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
// SIMDe 0.7.4 has no alias for this one (a later version may).
#ifndef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps(a) simde_missing::mm512_cvtepi32_ps(a)
#endif
#include "corrected_planes_avx512.inc"
}  // namespace emulated
#undef FRACTRAIN_AVX512_TARGET
}  // namespace
}  // namespace fractrain::integer
#endif

namespace fractrain::integer {

bool corrected_planes_emulated(const int32_t* acc, const int32_t* box, const int32_t* weight_terms, int32_t on,
                               const int32_t* oc, const float* scale, const float* bias, int64_t P, int64_t C,
                               float* out) {
#ifdef FRACTRAIN_HAVE_SIMDE
  emulated::corrected_planes_avx512(acc, box, weight_terms, on, oc, scale, bias, P, C, out);
  return true;
#else
  return false;
#endif
}

}  // namespace fractrain::integer
