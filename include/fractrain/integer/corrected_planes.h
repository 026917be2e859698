#pragma once
// The last step of the forward and error passes (integer_conv.cpp): one sample's int32 sums of code products,
// [P][C] as oneDNN writes them (channels last), turned into float values written channels first ([C][P], the
// layout of the layer's NCHW result) with the zero-point corrections and the scales. A kernel of its own, public
// so that tests can hold the vectorised version to the portable one.
#include <cstdint>

namespace fractrain::integer {

// value(c, p) = float(acc[p][c] + oc[c] * box[p] + on * weight_terms[c][p]) * scale[c] + bias[c]
//   acc:          the sample's integer sums, [P][C]
//   box:          per position, the sum of the sample's codes over its valid terms (as double)
//   weight_terms: per channel and position, the weights' terms, which do not depend on the sample ([C][P])
//   on, oc:       the sample's and the channels' integer offsets
// Every term is an integer below 2^53 and so is every partial sum: the double sum is exact in any order, and each
// value is the exact integer rounded once to float, then scaled. The vectorised kernel and the portable one
// therefore agree bit for bit (tests/test_integer_conv.cpp).
void corrected_planes(const int32_t* acc, const double* box, const double* weight_terms, double on, const double* oc,
                      const float* scale, const float* bias, int64_t P, int64_t C, float* out);

// The portable loop (the reference of the vectorised ones, and the path on CPUs with neither AVX-512 nor AVX2).
void corrected_planes_portable(const int32_t* acc, const double* box, const double* weight_terms, double on,
                               const double* oc, const float* scale, const float* bias, int64_t P, int64_t C,
                               float* out);

// The AVX2 form, the path on CPUs with AVX2 but not AVX-512 (public for its test). Returns false, writing nothing,
// on CPUs without AVX2.
bool corrected_planes_avx2(const int32_t* acc, const double* box, const double* weight_terms, double on,
                           const double* oc, const float* scale, const float* bias, int64_t P, int64_t C, float* out);

// Tests only: the AVX-512 form's very source on SIMDe's portable implementations of the intrinsics (any CPU, slow).
// Returns false, writing nothing, in a build without SIMDe's headers (Debian: libsimde-dev).
bool corrected_planes_emulated(const int32_t* acc, const double* box, const double* weight_terms, double on,
                               const double* oc, const float* scale, const float* bias, int64_t P, int64_t C,
                               float* out);

}  // namespace fractrain::integer
