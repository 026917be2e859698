#pragma once
// The three int8 oneDNN primitives integer execution runs on, behind plain pointer interfaces (no oneDNN type
// leaves src/integer). All sums are exact 32-bit integer sums: on CPUs with VNNI or AMX at any width, on CPUs
// without them while the unsigned operand's codes have at most integer_support().max_unsigned_bits = 7 bits (the
// callers check; integer_support.h says why); the callers keep each sum's worst case inside int32
// (integer_conv.cpp). Primitives are created once per shape and
// cached. Written against oneDNN 2.x (Debian's 2.6); the 3.x API differs (no op descriptors).
// While a test assumes integer support without the real one (integer_support().plain_loops), every function here
// runs on plain_int8.h's exact loops instead, and conv_backward_weight_s32 declines (returns false).
#include <cstdint>
#include <memory>
#include <string>

#include "fractrain/integer/integer_conv.h"

namespace fractrain::integer {

// The forward or error-backward product of one layer, its weights reordered once:
// - Forward: y[n, oh, ow, o] (int32, NHWC) = sum over i, kh, kw of x[n, ih, iw, i] (uint8, NHWC, zero outside) *
//   w[o, i, kh, kw] (int8, OIHW).
// - ErrorBackward, the transposed convolution: dx[n, ih, iw, i] (int32, NHWC) = sum over o and the output
//   positions/taps that read (ih, iw) of dy[n, oh, ow, o] (NHWC) * w[o, i, kh, kw] (int8, OIHW). The gradient's
//   codes are int8 (Source::Signed) or, where none is negative (below 8 bits: no shift), read as uint8
//   (Source::Unsigned), which CPUs without 8-bit dot products add exactly up to 7 bits and int8 not at all.
// It runs on blocks of samples: from several threads at once, each block on the calling thread alone (oneDNN runs
// serially inside a parallel region), so that a block's int32 sums are still in that core's cache when the
// corrections read them. `g.batch` is ignored; the weights must outlive the object.
class BlockProduct {
 public:
  enum class Pass { Forward, ErrorBackward };
  enum class Source { Unsigned, Signed };  // the forward's is unsigned
  BlockProduct(Pass pass, const ConvGeometry& g, const int8_t* w_oihw, Source source = Source::Unsigned);
  ~BlockProduct();
  BlockProduct(const BlockProduct&) = delete;
  BlockProduct& operator=(const BlockProduct&) = delete;
  // dst (int32, NHWC) = the product for `samples` consecutive samples of codes at src (NHWC: the forward's uint8
  // input codes, the error backward's gradient codes as `source` says). Thread-safe.
  void run(int64_t samples, const void* src, int32_t* dst) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The weight gradient as oneDNN's int8 forward convolution with samples and channels swapped (its backward passes
// are float only): dw[i, kh, kw, o] (int32) = sum over the g.batch samples and the output positions of
// x[n, ih, iw, i] (uint8, stored [I][H][W][N]; zero outside) * dy[n, oh, ow, o] (int8, NHWC). The layer's input
// channels are the convolution's batch, its samples the convolution's channels, dy the convolution's weights, and
// the layer's stride the convolution's dilation. Returns false, computing nothing, where oneDNN offers only its
// slow reference implementation for the shape (seen for 1x1 stride 2, and for samples not packed densely), so
// the caller can take another path.
bool conv_backward_weight_s32(const ConvGeometry& g, const uint8_t* x_ihwn, const int8_t* dy_nhwc, int32_t* dw_ihwo);

// c[m, n] (int32, row-major) = sum over k of a[m, k] (int8, rows `lda` apart) * b[k, n] (int8, row-major).
void matmul_s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int32_t* c);
// The same with a unsigned: a[m, k] at a + m * a_row + k * a_column (uint8; e.g. a transposed matrix).
void matmul_u8_s32(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t a_row, int64_t a_column,
                   const int8_t* b, int32_t* c);

// Byte copy between layouts: dst[i0, i1, i2] = src[i0, i1, i2], with each tensor's own element strides (a
// transposition when they differ), on oneDNN's jit reorder.
void reorder_bytes(const int64_t dims[3], const int64_t src_strides[3], const void* src, const int64_t dst_strides[3],
                   void* dst);

// integer_support()'s check of a CPU without 8-bit dot products: each product above on oneDNN (the swapped weight
// gradient where oneDNN has a fast kernel for it) against the plain loops, on a 3x3, a strided 3x3 and a 1x1
// layer, on the worst 7-bit codes (every adjacent pair at 2 x 127 x -128 and 2 x 127 x 127) and on random ones. ""
// when all agree bit for bit, else which product differed. Never reads integer_support().
std::string pair_saturating_products_mismatch();

}  // namespace fractrain::integer
