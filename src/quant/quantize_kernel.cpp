// Fused quantization kernel. Compiled with -ffp-contract=off (see CMakeLists) so that `t * s + lo` is not
// fused into an FMA: the kernel must round exactly like the tensor-op reference.
#include "fractrain/quant/quantize_kernel.h"

#include <ATen/Parallel.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>

namespace fractrain::kernel {
namespace {

constexpr int64_t kSpan = 1024;       // elements per inner call (noise buffer on the stack), a multiple of 64
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

constexpr uint32_t kPhiloxMul0 = 0xD2511F53u, kPhiloxMul1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxWeyl0 = 0x9E3779B9u, kPhiloxWeyl1 = 0xBB67AE85u;

inline float centered_uniform(uint32_t word) { return static_cast<float>(word >> 8) * (1.0f / 16777216.0f) - 0.5f; }

// The 64 uniforms in [-0.5, 0.5) of one tile of PhiloxStream::word: 16 Philox blocks computed side by side,
// each word stored as a contiguous run of 16. Portable version (also the reference for the AVX-512 one).
void philox_tile_uniform_portable(const PhiloxStream& stream, uint64_t tile, float* out) {
  for (int b = 0; b < 16; ++b) {
    const Philox4x32 r = stream.block(tile * 16 + static_cast<uint64_t>(b));
    for (int w = 0; w < 4; ++w) out[16 * w + b] = centered_uniform(r.v[w]);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// 32x32 -> 64-bit products of 16 lanes, split into high and low words (AVX-512 has no 32-bit mulhi).
__attribute__((target("avx512f"))) inline void mulhilo16(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

__attribute__((target("avx512f"))) void philox_tile_uniform_avx512(const PhiloxStream& stream, uint64_t tile,
                                                                   float* out) {
  alignas(64) uint32_t lo_counter[16], hi_counter[16];
  for (int b = 0; b < 16; ++b) {
    const uint64_t block = tile * 16 + static_cast<uint64_t>(b);
    lo_counter[b] = static_cast<uint32_t>(block);
    hi_counter[b] = static_cast<uint32_t>(block >> 32);
  }
  __m512i c0 = _mm512_load_si512(lo_counter);
  __m512i c1 = _mm512_load_si512(hi_counter);
  __m512i c2 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream.stream)));
  __m512i c3 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(stream.stream >> 32)));
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kPhiloxMul0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kPhiloxMul1));
  uint32_t k0 = static_cast<uint32_t>(stream.key), k1 = static_cast<uint32_t>(stream.key >> 32);
  for (int round = 0; round < 10; ++round) {
    __m512i hi0, lo0, hi1, lo1;
    mulhilo16(c0, m0, hi0, lo0);
    mulhilo16(c2, m1, hi1, lo1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(static_cast<int>(k0)));
    c1 = lo1;
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(static_cast<int>(k1)));
    c3 = lo0;
    k0 += kPhiloxWeyl0;
    k1 += kPhiloxWeyl1;
  }
  const __m512 scale = _mm512_set1_ps(1.0f / 16777216.0f);
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512i words[4] = {c0, c1, c2, c3};
  for (int w = 0; w < 4; ++w) {
    const __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(words[w], 8)), scale);
    _mm512_storeu_ps(out + 16 * w, _mm512_sub_ps(u, half));
  }
}

bool have_avx512() {
  // Not a namespace-scope constant: static initialisers may run before libgcc has read the CPU features.
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return available;
}
#endif

void philox_tile_uniform(const PhiloxStream& stream, uint64_t tile, float* out) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (have_avx512()) return philox_tile_uniform_avx512(stream, tile, out);
#endif
  philox_tile_uniform_portable(stream, tile, out);
}

// noise[i] = U(-0.5, 0.5) for flat indices [begin, begin + n), whole tiles at a time.
void fill_noise(const PhiloxStream& stream, int64_t begin, int64_t n, float* out) {
  float tile_values[64];
  int64_t i = 0;
  while (i < n) {
    const uint64_t index = static_cast<uint64_t>(begin + i);
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
