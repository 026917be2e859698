#pragma once
// The int8 products of onednn_int8.h as plain loops: exact int32 sums on every CPU, slow (no vectors, no
// blocking). They stand in for oneDNN while a test assumes integer support on a CPU that cannot add 8-bit products
// exactly (AssumeIntegerSupportForTests, integer_support.h), so that every integer pass is tested on every machine,
// and they are the reference that oneDNN's products are held to where it runs. Layouts and meaning as in
// onednn_int8.h; the callers keep every sum inside int32.
#include <cstdint>

#include "fractrain/integer/integer_conv.h"

namespace fractrain::integer::plain {

// y[n, oh, ow, o] = sum over i, kh, kw of x[n, ih, iw, i] * w[o, i, kh, kw] (zero outside the input).
void conv_forward_s32(const ConvGeometry& g, const uint8_t* x_nhwc, const int8_t* w_oihw, int32_t* y_nhwc);

// dx[n, ih, iw, i] = sum over o and the output positions and taps that read (ih, iw) of dy[n, oh, ow, o] *
// w[o, i, kh, kw]: the transposed convolution.
void conv_error_s32(const ConvGeometry& g, const int8_t* dy_nhwc, const int8_t* w_oihw, int32_t* dx_nhwc);
void conv_error_s32(const ConvGeometry& g, const uint8_t* dy_nhwc, const int8_t* w_oihw, int32_t* dx_nhwc);

// c[m, n] = sum over k of a[m, k] (rows lda apart) * b[k, n].
void matmul_s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int32_t* c);
// The same with a[m, k] (uint8) at a + m * a_row + k * a_column.
void matmul_u8_s32(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t a_row, int64_t a_column,
                   const int8_t* b, int32_t* c);

// dst[i0, i1, i2] = src[i0, i1, i2], bytes, each with its own element strides.
void reorder_bytes(const int64_t dims[3], const int64_t src_strides[3], const void* src, const int64_t dst_strides[3],
                   void* dst);

}  // namespace fractrain::integer::plain
