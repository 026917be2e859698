#pragma once
// The last step of the forward and error passes (integer_conv.cpp): one sample's int32 sums of code products,
// [P][C] as oneDNN writes them (channels last), turned into float values written channels first ([C][P], the
// layout of the layer's NCHW result) with the zero-point corrections and the scales. A kernel of its own, public
// so that tests can hold the vectorised version to the portable one.
#include <cstdint>

namespace fractrain::integer {

// value(c, p) = float(acc[p][c] + oc[c] * box[p] + on * weight_terms[c][p]) * scale[c] + bias[c]
//   acc:          the sample's integer sums, [P][C]
//   box:          per position, the sum of the sample's codes over its valid terms
//   weight_terms: per channel and position, the weights' terms, which do not depend on the sample ([C][P])
//   on, oc:       the sample's and the channels' integer offsets
// The integer sum is formed modulo 2^32 (int32 lanes, 16 to an AVX-512 register): it is the exact sum whenever
// that lies in int32's range, which the caller guarantees (corrections_fit_int32), even where a term alone does
// not (terms may be passed wrapped to 32 bits). Converting that int32 to float rounds it once, as the exact
// integer would be rounded, then it is scaled. Every form forms the same residue and converts it the same way,
// so the vectorised kernels and the portable one agree bit for bit on any input (tests/test_integer_conv.cpp).
void corrected_planes(const int32_t* acc, const int32_t* box, const int32_t* weight_terms, int32_t on,
                      const int32_t* oc, const float* scale, const float* bias, int64_t P, int64_t C, float* out);

// Whether corrected_planes' int32 sums are exact for a sample: true when `terms` products of two offset-shifted
// codes, each code at most 255 in magnitude and offset by at most `max_offset_a` and `max_offset_b`, cannot reach
// 2^31 in magnitude.
bool corrections_fit_int32(int64_t terms, int64_t max_offset_a, int64_t max_offset_b);

// The bound behind it: terms * (255 + |max_offset_a|) * (255 + |max_offset_b|) < limit (formed in 128 bits), which
// also bounds every term of the corrected sum (the double loop of integer_conv.cpp checks it against 2^52).
bool corrected_terms_below(int64_t terms, int64_t max_offset_a, int64_t max_offset_b, int64_t limit);

// The portable loop (the reference of the vectorised ones, and the path on CPUs with neither AVX-512 nor AVX2).
void corrected_planes_portable(const int32_t* acc, const int32_t* box, const int32_t* weight_terms, int32_t on,
                               const int32_t* oc, const float* scale, const float* bias, int64_t P, int64_t C,
                               float* out);

// The AVX2 form, the path on CPUs with AVX2 but not AVX-512 (public for its test). Returns false, writing nothing,
// on CPUs without AVX2.
bool corrected_planes_avx2(const int32_t* acc, const int32_t* box, const int32_t* weight_terms, int32_t on,
                           const int32_t* oc, const float* scale, const float* bias, int64_t P, int64_t C, float* out);

// Tests only: the AVX-512 form's very source on SIMDe's portable implementations of the intrinsics (any CPU, slow).
// Returns false, writing nothing, in a build without SIMDe's headers (Debian: libsimde-dev).
bool corrected_planes_emulated(const int32_t* acc, const int32_t* box, const int32_t* weight_terms, int32_t on,
                               const int32_t* oc, const float* scale, const float* bias, int64_t P, int64_t C,
                               float* out);

}  // namespace fractrain::integer
