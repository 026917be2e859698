#pragma once
// The AVX-512 conversions that SIMDe 0.7.4 (Debian's libsimde-dev) lacks, for the emulated forms of
// direct_weight_gradient.cpp and corrected_planes.cpp: each converts the lanes of one vector in order, as the
// instruction does (to a wider integer: exact; int32 to float: rounded to nearest even, the default rounding mode,
// as a static_cast rounds). Include after <simde/x86/avx512.h>.
#include <cstring>

namespace fractrain::integer::simde_missing {

template <typename To, typename From, int kLanes, typename Out, typename In>
Out convert_lanes(const In& in) {
  static_assert(sizeof(From) * kLanes == sizeof(In) && sizeof(To) * kLanes == sizeof(Out), "lane counts");
  From from[kLanes];
  To to[kLanes];
  std::memcpy(from, &in, sizeof from);
  for (int l = 0; l < kLanes; ++l) to[l] = static_cast<To>(from[l]);
  Out out;
  std::memcpy(&out, to, sizeof to);
  return out;
}

// vpmovsxdq and vcvtdq2ps on 512 bits.
inline simde__m512i mm512_cvtepi32_epi64(simde__m256i a) { return convert_lanes<int64_t, int32_t, 8, simde__m512i>(a); }
inline simde__m512 mm512_cvtepi32_ps(simde__m512i a) { return convert_lanes<float, int32_t, 16, simde__m512>(a); }

}  // namespace fractrain::integer::simde_missing
