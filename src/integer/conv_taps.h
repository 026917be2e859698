#pragma once
// What the integer passes (integer_conv.cpp, integer_weight_gradient.cpp) share: the geometry of a convolution's
// taps and positions, the check of a tensor of codes against the layer, and the instruction-set clones of their
// hot loops. Internal to src/integer.
#include <cstdint>
#include <string>
#include <vector>

#include "fractrain/integer/integer_conv.h"
#include "fractrain/integer/integer_support.h"
#include "fractrain/util/error.h"

// Compiled for AVX-512 and AVX2 as well as the baseline, chosen at run time (as the quantizer's kernel).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FRACTRAIN_INTEGER_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FRACTRAIN_INTEGER_CLONES
#endif

namespace fractrain::integer::detail {

inline int64_t taps_of(const ConvGeometry& g) { return g.kernel * g.kernel; }
inline int64_t in_positions(const ConvGeometry& g) { return g.height * g.width; }
inline int64_t out_positions(const ConvGeometry& g) { return g.out_height() * g.out_width(); }

// The input position that output position (oh, ow) reads through tap (kh, kw), or -1 in the padding.
inline int64_t input_position(const ConvGeometry& g, int64_t oh, int64_t ow, int64_t kh, int64_t kw) {
  const int64_t ih = oh * g.stride - g.padding + kh, iw = ow * g.stride - g.padding + kw;
  if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) return -1;
  return ih * g.width + iw;
}

// For every output position and tap, the input position it reads (-1: padding), [P][taps].
inline std::vector<int64_t> tap_map(const ConvGeometry& g) {
  const int64_t taps = taps_of(g);
  std::vector<int64_t> map(static_cast<size_t>(out_positions(g) * taps));
  for (int64_t oh = 0; oh < g.out_height(); ++oh)
    for (int64_t ow = 0; ow < g.out_width(); ++ow)
      for (int64_t kh = 0; kh < g.kernel; ++kh)
        for (int64_t kw = 0; kw < g.kernel; ++kw)
          map[static_cast<size_t>((oh * g.out_width() + ow) * taps + kh * g.kernel + kw)] =
              input_position(g, oh, ow, kh, kw);
  return map;
}

// Dense (groups 1) or depthwise: the only groupings the integer passes compute.
inline void check_groups(const ConvGeometry& g, const char* what) {
  if (g.groups != 1 && !g.depthwise())
    throw Error(std::string("integer ") + what + ": " + std::to_string(g.groups) + " groups of " +
                std::to_string(g.in_channels) + " -> " + std::to_string(g.out_channels) +
                " channels: only dense (1 group) and depthwise (groups = in = out channels) convolutions run on "
                "integers");
}

inline void check_features(const FeatureCodes& f, int64_t batch, int64_t channels, int64_t positions, const char* what) {
  if (f.batch() != batch || f.channels != channels || f.positions != positions)
    throw Error(std::string("integer ") + what + ": codes of " + std::to_string(f.batch()) + " samples x " +
                std::to_string(f.positions) + " positions x " + std::to_string(f.channels) +
                " channels do not fit the layer (" + std::to_string(batch) + " x " + std::to_string(positions) +
                " x " + std::to_string(channels) + ")");
}

// total[i] += codes[i] for i < n, one overload per signedness of the codes; cloned so that the compiler widens the
// codes with AVX2/AVX-512 where the CPU has them (integer_codes.cpp). Sums of codes over channels (the quantizer's
// position sums) and over samples (the weight gradient's corrections).
void add_codes(const uint8_t* codes, int64_t n, int32_t* total);
void add_codes(const int8_t* codes, int64_t n, int32_t* total);

// The unsigned operand of a product (`bits` per sample) must be no wider than this CPU adds exactly
// (integer_support.h); the layers fall back before that, so reaching this is a caller's error, not a silent one.
inline void check_unsigned_width(const std::vector<int>& bits, const char* operand, const char* what) {
  if (const std::string refusal = unsigned_width_refusal(bits, operand); !refusal.empty())
    throw Error(std::string("integer ") + what + ": " + refusal);
}

}  // namespace fractrain::integer::detail
