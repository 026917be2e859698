// Fused quantization kernel. Compiled with -ffp-contract=off (see CMakeLists) so that `t * s + lo` is not
// fused into an FMA: the kernel must round exactly like the tensor-op reference. The per-element arithmetic is
// quant_math.h's, shared with the CUDA kernels.
#include "fractrain/quant/quantize_kernel.h"

#include <ATen/TensorIterator.h>
#include <ATen/ops/from_blob.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "fractrain/quant/simd_quotient.h"
#include "fractrain/util/cpu_features.h"

namespace fractrain::kernel {
namespace {

constexpr int64_t kSpan = 1024;       // elements per inner call (noise buffer on the stack), a multiple of 64
constexpr int64_t kGrain = 1 << 15;   // fewest elements worth a parallel chunk

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FRACTRAIN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FRACTRAIN_CLONES
#endif

FRACTRAIN_CLONES
void quantize_span_portable(const float* x, float* y, int64_t n, float lo, float s, float levels,
                            const float* noise) {
  if (noise) {
    for (int64_t i = 0; i < n; ++i) y[i] = quant_math::quantize_stochastic(x[i], lo, s, levels, noise[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = quant_math::quantize_nearest(x[i], lo, s, levels);
  }
}

FRACTRAIN_CLONES
void codes_span_portable(const float* x, uint8_t* out, int64_t n, float lo, float s, float levels,
                         const float* noise, int shift) {
  for (int64_t i = 0; i < n; ++i) {
    const float t = noise ? quant_math::code_stochastic(x[i], lo, s, levels, noise[i])
                          : quant_math::code_nearest(x[i], lo, s, levels);
    out[i] = static_cast<uint8_t>(static_cast<int>(t) - shift);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC bug 105593, see below
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// The two spans on AVX-512 with the quotient formed without a division (simd_quotient.h): the codes
// round_half_even(clamp_to_levels((x - lo) / s [+ u])) and the values code * s + lo (a multiply and an add, no FMA)
// of quant_math.h, element by element the portable spans' bit for bit (tests/test_fake_quantize.cpp). Tails of
// fewer than 16 elements take the portable spans.
struct SpanCodes {
  __m512 lo, scale, inverse, levels;
  SpanCodes(float lo_, float s, float levels_) __attribute__((target("avx512f")))
      : lo(_mm512_set1_ps(lo_)), scale(_mm512_set1_ps(s)), inverse(_mm512_set1_ps(1.0f / s)),
        levels(_mm512_set1_ps(levels_)) {}
  __attribute__((target("avx512f,fma"), always_inline)) __m512 code(__m512 x, const float* noise) const {
    __m512 t = simd::quotient(_mm512_sub_ps(x, lo), scale, inverse);
    if (noise) t = _mm512_add_ps(t, _mm512_loadu_ps(noise));
    return simd::round_half_even(simd::clamp_to_levels(t, levels));
  }
};

__attribute__((target("avx512f,fma"))) void quantize_span_avx512(const float* x, float* y, int64_t n, float lo,
                                                                 float s, float levels, const float* noise) {
  const SpanCodes codes(lo, s, levels);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 code = codes.code(_mm512_loadu_ps(x + i), noise ? noise + i : nullptr);
    _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_mul_ps(code, codes.scale), codes.lo));
  }
  quantize_span_portable(x + i, y + i, n - i, lo, s, levels, noise ? noise + i : nullptr);
}

__attribute__((target("avx512f,fma"))) void codes_span_avx512(const float* x, uint8_t* out, int64_t n, float lo,
                                                              float s, float levels, const float* noise,
                                                              int shift) {
  const SpanCodes codes(lo, s, levels);
  const __m512i shift_v = _mm512_set1_epi32(shift);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 code = codes.code(_mm512_loadu_ps(x + i), noise ? noise + i : nullptr);
    // static_cast<int>(t) - shift, kept to its low byte as static_cast<uint8_t> does.
    const __m512i stored = _mm512_sub_epi32(_mm512_cvttps_epi32(code), shift_v);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(stored));
  }
  codes_span_portable(x + i, out + i, n - i, lo, s, levels, noise ? noise + i : nullptr, shift);
}
#pragma GCC diagnostic pop
#endif

bool vector_quotient(float s) { return simd::cpu_runs_quotient() && simd::usable(s); }

void quantize_span(const float* x, float* y, int64_t n, float lo, float s, float levels, const float* noise) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (vector_quotient(s)) return quantize_span_avx512(x, y, n, lo, s, levels, noise);
#endif
  quantize_span_portable(x, y, n, lo, s, levels, noise);
}

void codes_span(const float* x, uint8_t* out, int64_t n, float lo, float s, float levels, const float* noise,
                int shift) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (vector_quotient(s)) return codes_span_avx512(x, out, n, lo, s, levels, noise, shift);
#endif
  codes_span_portable(x, out, n, lo, s, levels, noise, shift);
}

constexpr uint32_t kPhiloxMul0 = 0xD2511F53u, kPhiloxMul1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxWeyl0 = 0x9E3779B9u, kPhiloxWeyl1 = 0xBB67AE85u;

using quant_math::centered_uniform;

// The 64 uniforms in [-0.5, 0.5) of one tile of PhiloxStream::word: 16 Philox blocks computed side by side,
// each word stored as a contiguous run of 16. Portable version (also the reference for the AVX-512 one).
void philox_tile_uniform_portable(const PhiloxStream& stream, uint64_t tile, float* out) {
  for (int b = 0; b < 16; ++b) {
    const Philox4x32 r = stream.block(tile * 16 + static_cast<uint64_t>(b));
    for (int w = 0; w < 4; ++w) out[16 * w + b] = centered_uniform(r.v[w]);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12 takes the undefined placeholder vectors inside the AVX-512 intrinsics for uninitialised variables
// (GCC bug 105593); the warnings are false.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"

// Philox state of 8 blocks side by side, each 32-bit word in the low half of a 64-bit lane. That layout suits
// AVX-512, which has no 32-bit multiply-high: _mm512_mul_epu32 reads the low halves and returns the full 64-bit
// product, i.e. the new low word in place and the high word one shift away. The high halves of the state fill
// with junk that never reaches a low half (only lane-wise XORs, and multiplies that ignore them).
struct PhiloxLanes {
  __m512i c0, c1, c2, c3;
};

__attribute__((target("avx512f"))) inline void philox_round(PhiloxLanes& s, __m512i key0, __m512i key1) {
  const __m512i m0 = _mm512_set1_epi64(kPhiloxMul0), m1 = _mm512_set1_epi64(kPhiloxMul1);
  const __m512i p0 = _mm512_mul_epu32(s.c0, m0);  // hi0:lo0
  const __m512i p1 = _mm512_mul_epu32(s.c2, m1);  // hi1:lo1
  constexpr int kXor3 = 0x96;                       // ternary logic truth table of a ^ b ^ c
  s.c0 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), s.c1, key0, kXor3);
  s.c1 = p1;
  s.c2 = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), s.c3, key1, kXor3);
  s.c3 = p0;
}

// The low words of a's 8 lanes followed by those of b's.
__attribute__((target("avx512f"))) inline __m512i low_words(__m512i a, __m512i b) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  return _mm512_permutex2var_epi32(a, even, b);
}

__attribute__((target("avx512f"))) void philox_tile_uniform_avx512(const PhiloxStream& stream, uint64_t tile,
                                                                   float* out) {
  // Blocks tile * 16 + b, b < 16: the low counter word cannot wrap (tile * 16 is a multiple of 16).
  const uint64_t first = tile * 16;
  const __m512i lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i counter_lo = _mm512_set1_epi64(static_cast<uint32_t>(first));
  const __m512i counter_hi = _mm512_set1_epi64(static_cast<uint32_t>(first >> 32));
  const __m512i stream_lo = _mm512_set1_epi64(static_cast<uint32_t>(stream.stream));
  const __m512i stream_hi = _mm512_set1_epi64(static_cast<uint32_t>(stream.stream >> 32));
  PhiloxLanes a{_mm512_add_epi64(counter_lo, lanes), counter_hi, stream_lo, stream_hi};
  PhiloxLanes b{_mm512_add_epi64(counter_lo, _mm512_add_epi64(lanes, _mm512_set1_epi64(8))), counter_hi, stream_lo,
                stream_hi};
  uint32_t k0 = static_cast<uint32_t>(stream.key), k1 = static_cast<uint32_t>(stream.key >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m512i key0 = _mm512_set1_epi64(k0), key1 = _mm512_set1_epi64(k1);
    philox_round(a, key0, key1);
    philox_round(b, key0, key1);
    k0 += kPhiloxWeyl0;
    k1 += kPhiloxWeyl1;
  }
  const __m512 scale = _mm512_set1_ps(1.0f / 16777216.0f);
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512i words[4] = {low_words(a.c0, b.c0), low_words(a.c1, b.c1), low_words(a.c2, b.c2),
                            low_words(a.c3, b.c3)};
  for (int w = 0; w < 4; ++w) {
    const __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(words[w], 8)), scale);
    _mm512_storeu_ps(out + 16 * w, _mm512_sub_ps(u, half));
  }
}

// The same on AVX2 (CPUs without AVX-512, CI's among them), 4 blocks per vector in the same 64-bit-lane layout:
// _mm256_mul_epu32 also multiplies the low halves into full 64-bit products; two XORs stand in for the ternary
// logic. Tested bit for bit against PhiloxStream::uniform by FakeQuantize.FusedEqualsReferenceStochastic where it
// is the form chosen (CPUs with AVX2 but not AVX-512).
struct PhiloxLanes4 {
  __m256i c0, c1, c2, c3;
};

__attribute__((target("avx2"))) inline void philox_round_avx2(PhiloxLanes4& s, __m256i key0, __m256i key1) {
  const __m256i m0 = _mm256_set1_epi64x(kPhiloxMul0), m1 = _mm256_set1_epi64x(kPhiloxMul1);
  const __m256i p0 = _mm256_mul_epu32(s.c0, m0);  // hi0:lo0
  const __m256i p1 = _mm256_mul_epu32(s.c2, m1);  // hi1:lo1
  s.c0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), s.c1), key0);
  s.c1 = p1;
  s.c2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), s.c3), key1);
  s.c3 = p0;
}

__attribute__((target("avx2"))) inline __m256i word_of(const PhiloxLanes4& s, int w) {
  return w == 0 ? s.c0 : w == 1 ? s.c1 : w == 2 ? s.c2 : s.c3;
}

__attribute__((target("avx2"))) void philox_tile_uniform_avx2(const PhiloxStream& stream, uint64_t tile,
                                                              float* out) {
  const uint64_t first = tile * 16;  // as above: the low counter word cannot wrap within the tile
  const __m256i counter_lo = _mm256_set1_epi64x(static_cast<uint32_t>(first));
  const __m256i counter_hi = _mm256_set1_epi64x(static_cast<uint32_t>(first >> 32));
  const __m256i stream_lo = _mm256_set1_epi64x(static_cast<uint32_t>(stream.stream));
  const __m256i stream_hi = _mm256_set1_epi64x(static_cast<uint32_t>(stream.stream >> 32));
  PhiloxLanes4 blocks[4];  // blocks 4q .. 4q + 3
  for (int q = 0; q < 4; ++q)
    blocks[q] = {_mm256_add_epi64(counter_lo, _mm256_setr_epi64x(4 * q, 4 * q + 1, 4 * q + 2, 4 * q + 3)),
                 counter_hi, stream_lo, stream_hi};
  uint32_t k0 = static_cast<uint32_t>(stream.key), k1 = static_cast<uint32_t>(stream.key >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m256i key0 = _mm256_set1_epi64x(k0), key1 = _mm256_set1_epi64x(k1);
    for (PhiloxLanes4& b : blocks) philox_round_avx2(b, key0, key1);
    k0 += kPhiloxWeyl0;
    k1 += kPhiloxWeyl1;
  }
  const __m256 scale = _mm256_set1_ps(1.0f / 16777216.0f);
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256i low_first = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);  // the 4 low words into the lower half
  for (int w = 0; w < 4; ++w)
    for (int h = 0; h < 2; ++h) {  // blocks 8h .. 8h + 7
      const __m256i words =
          _mm256_permute2x128_si256(_mm256_permutevar8x32_epi32(word_of(blocks[2 * h], w), low_first),
                                    _mm256_permutevar8x32_epi32(word_of(blocks[2 * h + 1], w), low_first), 0x20);
      const __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(words, 8)), scale);
      _mm256_storeu_ps(out + 16 * w + 8 * h, _mm256_sub_ps(u, half));
    }
}

#pragma GCC diagnostic pop
#endif

}  // namespace

bool philox_tile_uniform_avx2_for_tests(const PhiloxStream& stream, uint64_t tile, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (!cpu_has_avx2()) return false;
  philox_tile_uniform_avx2(stream, tile, out);
  return true;
#else
  return false;
#endif
}

namespace {

void philox_tile_uniform(const PhiloxStream& stream, uint64_t tile, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx512f()) return philox_tile_uniform_avx512(stream, tile, out);
  if (cpu_has_avx2()) return philox_tile_uniform_avx2(stream, tile, out);
#endif
  philox_tile_uniform_portable(stream, tile, out);
}

// noise[i] = U(-0.5, 0.5) for flat indices [begin, begin + n), whole tiles at a time.
void fill_noise(const PhiloxStream& stream, uint64_t begin, int64_t n, float* out) {
  float tile_values[64];
  int64_t i = 0;
  while (i < n) {
    const uint64_t index = begin + static_cast<uint64_t>(i);
    const int64_t offset = static_cast<int64_t>(index & 63);
    const int64_t take = std::min<int64_t>(64 - offset, n - i);
    if (offset == 0 && take == 64) {
      philox_tile_uniform(stream, index >> 6, out + i);
    } else {
      philox_tile_uniform(stream, index >> 6, tile_values);
      std::copy(tile_values + offset, tile_values + offset + take, out + i);
    }
    i += take;
  }
}

// Calls body(begin, end) on consecutive chunks of [0, n) in parallel, on ATen's intra-op threads. Not
// at::parallel_for: in an OpenMP build of LibTorch (Debian's) that is a header template whose `#pragma omp
// parallel` only takes effect in files compiled with -fopenmp, and otherwise runs everything on the calling
// thread without a word. TensorIterator::for_each is compiled inside LibTorch, so it splits the work with
// LibTorch's own threading whatever the flags of this file. The n floats at `index_space` (the kernel's output
// buffer) only give the iterator its extent: a chunk's offset in them is its first index.
template <typename Body>
void parallel_chunks(float* index_space, int64_t n, const Body& body) {
  at::Tensor extent = at::from_blob(index_space, {n}, at::TensorOptions().dtype(at::kFloat));
  at::TensorIterator iter = at::TensorIterator::borrowing_nullary_op(extent);
  iter.for_each(
      [&](char** data, const int64_t* strides, int64_t size0, int64_t size1) {
        for (int64_t j = 0; j < size1; ++j) {
          const int64_t begin = reinterpret_cast<float*>(data[0] + j * strides[1]) - index_space;
          body(begin, begin + size0);
        }
      },
      kGrain);
}

// The smallest and largest of x[0, n), NaNs left out (+inf and -inf when there is nothing else), and how many
// NaNs there are. Portable version, also the reference of the AVX-512 one.
struct SpanExtremes {
  float lo, hi;
  int64_t nans;
};

SpanExtremes span_extremes_portable(const float* x, int64_t n) {
  SpanExtremes out{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), 0};
  for (int64_t i = 0; i < n; ++i) {
    out.lo = x[i] < out.lo ? x[i] : out.lo;  // false for a NaN: it is counted instead
    out.hi = x[i] > out.hi ? x[i] : out.hi;
    out.nans += x[i] != x[i];
  }
  return out;
}

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC bug 105593, as above
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// 16 lanes at a time. _mm512_min_ps(v, lo) is `v < lo ? v : lo` lane by lane, so a NaN in v leaves lo as it is,
// as in the portable loop; the NaNs are counted from an unordered compare.
__attribute__((target("avx512f"))) SpanExtremes span_extremes_avx512(const float* x, int64_t n) {
  __m512 lo = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __m512 hi = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t nans = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    lo = _mm512_min_ps(v, lo);
    hi = _mm512_max_ps(v, hi);
    nans += __builtin_popcount(static_cast<unsigned>(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q)));
  }
  SpanExtremes out = span_extremes_portable(x + i, n - i);
  out.lo = std::min(out.lo, _mm512_reduce_min_ps(lo));
  out.hi = std::max(out.hi, _mm512_reduce_max_ps(hi));
  out.nans += nans;
  return out;
}
#pragma GCC diagnostic pop
#endif

SpanExtremes span_extremes(const float* x, int64_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx512f()) return span_extremes_avx512(x, n);
#endif
  return span_extremes_portable(x, n);
}

MinMax with_nans(const SpanExtremes& e) {
  if (e.nans > 0) return {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::quiet_NaN()};
  return {e.lo, e.hi};
}

}  // namespace

MinMax min_max(const float* x, int64_t n) {
  if (n == 0) return {};
  std::mutex mutex;
  SpanExtremes total{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(), 0};
  // parallel_chunks needs a float buffer to index: x itself, only read for its extent.
  parallel_chunks(const_cast<float*>(x), n, [&](int64_t begin, int64_t end) {
    const SpanExtremes part = span_extremes(x + begin, end - begin);
    std::lock_guard<std::mutex> lock(mutex);
    total.lo = std::min(total.lo, part.lo);
    total.hi = std::max(total.hi, part.hi);
    total.nans += part.nans;
  });
  return with_nans(total);
}

MinMax serial_min_max(const float* x, int64_t n) {
  if (n == 0) return {};
  return with_nans(span_extremes(x, n));
}

void quantize_rows(const float* x, float* y, int64_t rows, int64_t row_len, const RowQuantParams* params,
                   const PhiloxStream* noise, uint64_t noise_first_index) {
  const int64_t total = rows * row_len;
  if (total == 0) return;
  parallel_chunks(y, total, [&](int64_t begin, int64_t end) {
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
        if (noise) fill_noise(*noise, noise_first_index + static_cast<uint64_t>(i), n, noise_buffer);
        quantize_span(x + i, y + i, n, p.lo, p.scale, p.levels, noise ? noise_buffer : nullptr);
      }
      i += n;
    }
  });
}

void quantize_span_to_codes(const float* x, int64_t n, const RowQuantParams& params, const PhiloxStream* noise,
                            uint64_t noise_index, int shift, uint8_t* out) {
  float noise_buffer[kSpan];
  for (int64_t i = 0; i < n; i += kSpan) {
    const int64_t len = std::min(kSpan, n - i);
    if (noise) fill_noise(*noise, noise_index + static_cast<uint64_t>(i), len, noise_buffer);
    codes_span(x + i, out + i, len, params.lo, params.scale, params.levels, noise ? noise_buffer : nullptr, shift);
  }
}

}  // namespace fractrain::kernel
