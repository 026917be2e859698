#include "fractrain/integer/direct_weight_gradient.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "conv_taps.h"  // FRACTRAIN_INTEGER_CLONES
#include "fractrain/util/cpu_features.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FRACTRAIN_HAVE_X86_DOT 1
#endif
#ifdef FRACTRAIN_HAVE_SIMDE  // CMakeLists.txt: SIMDe's headers (Debian: libsimde-dev) were found
#include <simde/x86/avx512.h>

#include "simde_missing.h"
#define FRACTRAIN_HAVE_EMULATED_VNNI 1
#endif

namespace fractrain::integer {

using namespace detail;  // conv_taps.h
namespace {

// The geometry as the kernel walks it, and its packed buffers' shapes.
struct DirectLayout {
  int64_t H, W, Ho, Wo, k, s, pad;
  // Positions that exist: H * W inputs and Ho * Wo outputs, except in the flat view of 1x1 stride-1 layers
  // (below), whose last row is cut short.
  int64_t valid_inputs, valid_outputs;
  int64_t I, O;
  int64_t Ip;  // input channels rounded up to whole tiles (8 for 3x3 kernels, 16 otherwise): zero planes past I
  int64_t Ob;  // chunks of 16 output channels
  int64_t M;   // groups of 4 output columns per row
  int64_t Cw;  // columns per input plane: 4 * M, plus the columns the taps reach past them
  int64_t taps() const { return k * k; }
  size_t x_bytes() const { return static_cast<size_t>(Ip * s * H * Cw); }
  size_t dy_bytes() const { return static_cast<size_t>(Ho * M * Ob * 64); }
  size_t acc_elements() const { return static_cast<size_t>(taps() * Ip * Ob * 16); }
};

// Rows of a 1x1 stride-1 layer's flat view: its positions (a linear layer's tokens, a 1x1 convolution's pixels)
// form one sequence, cut into rows of this many, so that a row's int32 sums stay far below overflow.
constexpr int64_t kFlatRow = 256;

DirectLayout layout_of(const ConvGeometry& g) {
  DirectLayout L{};
  const int64_t Q = g.height * g.width;
  L.k = g.kernel;
  L.s = g.stride;
  L.pad = g.padding;
  if (g.kernel == 1 && g.stride == 1 && g.padding == 0) {
    L.W = L.Wo = std::min(kFlatRow, (Q + 3) / 4 * 4);
    L.H = L.Ho = (Q + L.W - 1) / L.W;
  } else {
    L.H = g.height;
    L.W = g.width;
    L.Ho = g.out_height();
    L.Wo = g.out_width();
  }
  L.valid_inputs = Q;
  L.valid_outputs = L.k == 1 && L.s == 1 && L.pad == 0 ? Q : L.Ho * L.Wo;
  L.I = g.in_channels;
  L.O = g.out_channels;
  const int64_t tile_i = L.k == 3 ? 8 : 16;  // direct_weight_tiles.inc: sample_products
  L.Ip = (L.I + tile_i - 1) / tile_i * tile_i;
  L.Ob = (L.O + 15) / 16;
  L.M = (L.Wo + 3) / 4;
  L.Cw = 4 * L.M + (L.k - 1) / L.s;
  return L;
}

// One sample's input codes ([H*W][I], NHWC) as planes [Ip][s][H][Cw]: plane (i, r) column c holds input column
// s * c + r - pad, zero outside the input and in the padding channels.
FRACTRAIN_INTEGER_CLONES
void pack_inputs(const DirectLayout& L, const uint8_t* x, uint8_t* xr) {
  std::memset(xr, 0, L.x_bytes());
  const int64_t channel_stride = L.s * L.H * L.Cw;
  for (int64_t ih = 0; ih < L.H; ++ih)
    for (int64_t r = 0; r < L.s; ++r)
      for (int64_t c = 0; c < L.Cw; ++c) {
        const int64_t iw = L.s * c + r - L.pad, q = ih * L.W + iw;
        if (iw < 0 || iw >= L.W || q >= L.valid_inputs) continue;
        const uint8_t* src = x + q * L.I;
        uint8_t* dst = xr + (r * L.H + ih) * L.Cw + c;
        for (int64_t i = 0; i < L.I; ++i) dst[i * channel_stride] = src[i];
      }
}

// The same from the sample's planar codes ([I][H*W]): row copies (stride 1) or every s-th byte.
FRACTRAIN_INTEGER_CLONES
void pack_input_planes(const DirectLayout& L, const uint8_t* planes, uint8_t* xr) {
  std::memset(xr, 0, L.x_bytes());
  for (int64_t i = 0; i < L.I; ++i)
    for (int64_t r = 0; r < L.s; ++r)
      for (int64_t ih = 0; ih < L.H; ++ih) {
        // Columns c with 0 <= s * c + r - pad < W, and inside the positions that exist.
        const int64_t row_end = std::min(L.W, L.valid_inputs - ih * L.W);
        const int64_t first = std::max<int64_t>(0, (L.pad - r + L.s - 1) / L.s);
        const int64_t top = row_end - 1 - r + L.pad;  // s * (last column) at most
        const int64_t last = top < 0 ? 0 : std::min(L.Cw, top / L.s + 1);  // exclusive
        if (first >= last) continue;
        const uint8_t* src = planes + i * L.valid_inputs + ih * L.W + L.s * first + r - L.pad;
        uint8_t* dst = xr + ((i * L.s + r) * L.H + ih) * L.Cw + first;
        if (L.s == 1) {
          std::memcpy(dst, src, static_cast<size_t>(last - first));
        } else {
          for (int64_t c = 0; c < last - first; ++c) dst[c] = src[c * L.s];
        }
      }
}

// One sample's gradient codes ([P][O], NHWC) as [Ho][M][Ob][16][4]: lane o of vector (oh, m, chunk) holds output
// columns 4m..4m+3 of channel 16 * chunk + o, zero past the row and past O.
void pack_gradients(const DirectLayout& L, const int8_t* dy, int8_t* dy4) {
#ifdef FRACTRAIN_HAVE_X86_DOT
  if (L.O % 16 == 0) {
    // Four rows of 16 channels interleaved bytewise, then pairwise: SSE2, on every x86-64 CPU.
    const __m128i zero = _mm_setzero_si128();
    for (int64_t oh = 0; oh < L.Ho; ++oh)
      for (int64_t m = 0; m < L.M; ++m) {
        const int8_t* rows[4];
        for (int64_t j = 0; j < 4; ++j) {
          const int64_t ow = 4 * m + j, p = oh * L.Wo + ow;
          rows[j] = ow < L.Wo && p < L.valid_outputs ? dy + p * L.O : nullptr;
        }
        for (int64_t oc = 0; oc < L.Ob; ++oc) {
          __m128i v[4];
          for (int j = 0; j < 4; ++j)
            v[j] = rows[j] ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[j] + oc * 16)) : zero;
          const __m128i a = _mm_unpacklo_epi8(v[0], v[1]), b = _mm_unpackhi_epi8(v[0], v[1]);
          const __m128i c = _mm_unpacklo_epi8(v[2], v[3]), d = _mm_unpackhi_epi8(v[2], v[3]);
          auto* out = reinterpret_cast<__m128i*>(dy4 + ((oh * L.M + m) * L.Ob + oc) * 64);
          _mm_storeu_si128(out + 0, _mm_unpacklo_epi16(a, c));
          _mm_storeu_si128(out + 1, _mm_unpackhi_epi16(a, c));
          _mm_storeu_si128(out + 2, _mm_unpacklo_epi16(b, d));
          _mm_storeu_si128(out + 3, _mm_unpackhi_epi16(b, d));
        }
      }
    return;
  }
#endif
  std::memset(dy4, 0, L.dy_bytes());
  for (int64_t oh = 0; oh < L.Ho; ++oh)
    for (int64_t ow = 0; ow < L.Wo; ++ow) {
      const int64_t p = oh * L.Wo + ow;
      if (p >= L.valid_outputs) continue;
      const int8_t* src = dy + p * L.O;
      int8_t* dst = dy4 + (oh * L.M + ow / 4) * L.Ob * 64 + ow % 4;
      for (int64_t o = 0; o < L.O; ++o) dst[o * 4] = src[o];
    }
}

// vpdpbusd's arithmetic in plain C++: each int32 lane gains the four products of its unsigned bytes of `a` with
// its signed bytes of `b`.
struct PortableDot {
  struct Sums {
    int32_t lane[16];
  };
  struct Bytes {
    uint8_t byte[64];
  };
  static Sums zero() { return Sums{}; }
  static Bytes load64(const int8_t* p) {
    Bytes b;
    std::memcpy(b.byte, p, 64);
    return b;
  }
  static Bytes broadcast4(const uint8_t* p) {
    Bytes b;
    for (int l = 0; l < 16; ++l) std::memcpy(b.byte + 4 * l, p, 4);
    return b;
  }
  static Sums dot(Sums s, const Bytes& a, const Bytes& b) {
    for (int l = 0; l < 16; ++l)
      for (int j = 0; j < 4; ++j)
        s.lane[l] += int32_t{a.byte[4 * l + j]} * int32_t{static_cast<int8_t>(b.byte[4 * l + j])};
    return s;
  }
  static void add_to(const Sums& s, int64_t* dst) {
    for (int l = 0; l < 16; ++l) dst[l] += s.lane[l];
  }
};

namespace portable {
using Dot = PortableDot;
#define FRACTRAIN_DOT_TARGET
#include "direct_weight_tiles.inc"
#undef FRACTRAIN_DOT_TARGET
}  // namespace portable

#if defined(FRACTRAIN_HAVE_X86_DOT) && !defined(__clang__)
#define FRACTRAIN_HAVE_VNNI_KERNEL 1
// GCC 12 takes the undefined placeholder vectors inside the AVX-512 intrinsics for uninitialised variables (GCC
// bug 105593); the warnings are false.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define FRACTRAIN_DOT_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define FRACTRAIN_MM512(name) _mm512_##name
#define FRACTRAIN_M512I __m512i
namespace vnni {
#include "vnni_dot.inc"
using Dot = VnniDot;
#include "direct_weight_tiles.inc"
}  // namespace vnni
#undef FRACTRAIN_M512I
#undef FRACTRAIN_MM512
#undef FRACTRAIN_DOT_TARGET
#pragma GCC diagnostic pop
#endif

#ifdef FRACTRAIN_HAVE_EMULATED_VNNI
// The same vector form on SIMDe's plain implementations of the intrinsics (this file is not compiled for AVX-512,
// so SIMDe does not map them to the instructions): slow, exact, on any CPU, so that tests run the vector form's
// lanes, broadcasts and widening where the CPU cannot run vpdpbusd.
#define FRACTRAIN_DOT_TARGET
#define FRACTRAIN_MM512(name) simde_mm512_##name
#define FRACTRAIN_M512I simde__m512i
namespace vnni_emulated {
#define simde_mm512_cvtepi32_epi64 simde_missing::mm512_cvtepi32_epi64  // SIMDe 0.7.4 lacks it
#include "vnni_dot.inc"
using Dot = VnniDot;
#include "direct_weight_tiles.inc"
}  // namespace vnni_emulated
#undef simde_mm512_cvtepi32_epi64
#undef FRACTRAIN_M512I
#undef FRACTRAIN_MM512
#undef FRACTRAIN_DOT_TARGET
#endif

}  // namespace

bool cpu_has_avx512_vnni() {
#ifdef FRACTRAIN_HAVE_VNNI_KERNEL
  return cpu_has_avx512f() && cpu_has_avx512bw() && cpu_has_avx512vnni();
#else
  return false;
#endif
}

bool emulated_vnni_built() {
#ifdef FRACTRAIN_HAVE_EMULATED_VNNI
  return true;
#else
  return false;
#endif
}

bool direct_kernel_usable() {
  static const bool usable = [] {
    if (!cpu_has_avx512_vnni()) return false;
    uint32_t state = 12345;
    auto next_byte = [&state] {
      state = state * 1664525u + 1013904223u;
      return static_cast<uint8_t>(state >> 24);
    };
    for (const int64_t kernel : {3, 1}) {
      ConvGeometry g;
      g.batch = 3;
      g.in_channels = 9;
      g.out_channels = 20;
      g.height = 7;
      g.width = 11;
      g.kernel = kernel;
      g.stride = kernel == 3 ? 2 : 1;
      g.padding = kernel / 2;
      std::vector<uint8_t> x(static_cast<size_t>(g.batch * g.height * g.width * g.in_channels));
      std::vector<int8_t> dy(static_cast<size_t>(g.batch * out_positions(g) * g.out_channels));
      for (uint8_t& v : x) v = next_byte();
      for (int8_t& v : dy) v = static_cast<int8_t>(next_byte());
      const size_t size = static_cast<size_t>(g.out_channels * kernel * kernel * g.in_channels);
      std::vector<int64_t> vector_form(size, 0), portable_form(size, 0);
      const std::vector<int64_t> samples = {2, 0, 1};
      const int64_t max_terms = max_exact_terms(255, 128);
      if (!direct_weight_products(g, x.data(), nullptr, dy.data(), samples, max_terms, DotProductIsa::Avx512Vnni,
                                  vector_form.data()) ||
          !direct_weight_products(g, x.data(), nullptr, dy.data(), samples, max_terms, DotProductIsa::Portable,
                                  portable_form.data()) ||
          vector_form != portable_form) {
        std::fprintf(stderr,
                     "fractrain: the AVX-512 VNNI weight-gradient kernel disagrees with its portable form on this CPU "
                     "(a bug: please report it with `lscpu`); integer execution uses oneDNN's products instead\n");
        return false;
      }
    }
    return true;
  }();
  return usable;
}

bool direct_weight_products(const ConvGeometry& g, const uint8_t* x, const uint8_t* x_planar, const int8_t* dy,
                            const std::vector<int64_t>& samples, int64_t max_terms, DotProductIsa isa, int64_t* exact) {
  if (isa == DotProductIsa::Avx512Vnni && !cpu_has_avx512_vnni()) return false;
  if (isa == DotProductIsa::Avx512VnniEmulated && !emulated_vnni_built()) return false;
  if (g.height * g.width == 0 || out_positions(g) <= 0 || samples.empty()) return true;  // no terms: nothing to add
  const DirectLayout L = layout_of(g);
  const int64_t terms_per_row = 4 * L.M;  // per int32 lane: four products per group of columns
  if (max_terms < terms_per_row) return false;
  const int64_t rows_per_flush = max_terms / terms_per_row;
  const int64_t Q = g.height * g.width, P = out_positions(g);
  std::vector<int64_t> total(L.acc_elements(), 0);
  std::mutex total_mutex;
  at::parallel_for(0, static_cast<int64_t>(samples.size()), 1, [&](int64_t begin, int64_t end) {
    RECORD_USER_SCOPE("fractrain::integer_direct_weight_product");
    std::vector<uint8_t> xr(L.x_bytes());
    std::vector<int8_t> dy4(L.dy_bytes());
    std::vector<int64_t> acc(L.acc_elements(), 0);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = samples[static_cast<size_t>(r)];
      if (x_planar)
        pack_input_planes(L, x_planar + n * Q * L.I, xr.data());
      else
        pack_inputs(L, x + n * Q * L.I, xr.data());
      pack_gradients(L, dy + n * P * L.O, dy4.data());
#ifdef FRACTRAIN_HAVE_VNNI_KERNEL
      if (isa == DotProductIsa::Avx512Vnni) {
        vnni::sample_products(L, xr.data(), dy4.data(), rows_per_flush, acc.data());
        continue;
      }
#endif
#ifdef FRACTRAIN_HAVE_EMULATED_VNNI
      if (isa == DotProductIsa::Avx512VnniEmulated) {
        vnni_emulated::sample_products(L, xr.data(), dy4.data(), rows_per_flush, acc.data());
        continue;
      }
#endif
      portable::sample_products(L, xr.data(), dy4.data(), rows_per_flush, acc.data());
    }
    std::lock_guard<std::mutex> lock(total_mutex);
    for (size_t e = 0; e < acc.size(); ++e) total[e] += acc[e];
  });
  // [taps][Ip][Ob * 16] -> [O][taps][I]
  const int64_t taps = L.taps();
  for (int64_t o = 0; o < L.O; ++o)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t i = 0; i < L.I; ++i)
        exact[(o * taps + t) * L.I + i] += total[static_cast<size_t>((t * L.Ip + i) * L.Ob * 16 + o)];
  return true;
}

}  // namespace fractrain::integer
