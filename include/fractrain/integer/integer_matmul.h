#pragma once
// Products of two quantized activations (QMatmul: attention's Q K^T and A V) on integer codes. Each operand has one
// range per tensor, so one (scale, offset) each, and every output element is an exact integer sum plus
// corrections, as for the convolutions (integer_conv.h): for L terms,
//   sum (x + ox)(y + oy) = sum x*y + oy * sum x + ox * sum y + L * ox * oy,
// formed in int64 and rounded to float once, then scaled. The products are plain loops of fractrain's own over
// int8 codes that are contiguous along the summed axis (compiled for AVX-512, AVX2 and the baseline), so they are
// exact on every CPU; attention's matrices are small (sequence x head width), which oneDNN's int8 matmul, called
// per head, would not serve better.
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "fractrain/integer/integer_codes.h"

namespace fractrain::integer {

// A tensor [B, rows, cols] quantized with one range at one width: int8 codes (8-bit codes shifted by -128, the
// shift in the offset) and their affine map.
struct MatrixCodes {
  at::Tensor codes;  // int8 [B, rows, cols], contiguous
  CodeScale scale;
  int bits = 0;
};

// x: a float CPU tensor [..., rows, cols] (the leading dimensions become B), quantized as the fake quantizer does
// with a snapped zero point: nearest, or stochastic where `noise` is given (element i of x, in its logical order,
// draws noise->uniform(noise_first_index + i)).
MatrixCodes quantize_matrix(const at::Tensor& x, int bits, QuantRange range, const PhiloxStream* noise = nullptr,
                            uint64_t noise_first_index = 0);
// The values the codes stand for, float [B, rows, cols].
at::Tensor dequantize_matrix(const MatrixCodes& m);
// The same codes as [B, cols, rows].
MatrixCodes transposed(const MatrixCodes& m);

// How the integer sums of code products are formed; both give the same exact integers.
enum class CodeProduct {
  IntegerLoops,  // int8 x int8 loops with int32 chunks: what QMatmul runs
  DotKernel,     // the weight gradient's kernel (direct_weight_gradient.h) as a 1x1 convolution over the summed
                 // axis: its AVX-512 VNNI form where the CPU has it, else its portable form (exact, slow). Not yet
                 // chosen by the layers: bench_integer_matmul measures it against the loops on VNNI CPUs first.
};

// out[b, r, s] = the sum over l of value(x[b, r, l]) * value(y[b, s, l]): float [B, R, S] from x [B, R, L] and
// y [B, S, L]. So x y^T; a product x y of [B, R, L] and [B, L, S] is dot_products(x, transposed(y)).
at::Tensor dot_products(const MatrixCodes& x, const MatrixCodes& y,
                        CodeProduct product = CodeProduct::IntegerLoops);

namespace reference {
// The same in float64 from the dequantized codes, rounded once to float.
at::Tensor dot_products(const MatrixCodes& x, const MatrixCodes& y);
}  // namespace reference

}  // namespace fractrain::integer
