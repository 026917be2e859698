#include "plain_int8.h"

#include <vector>

namespace fractrain::integer::plain {
namespace {

// w[o, i, kh, kw] as [kh][kw][outer][inner], so that the inner loops read consecutive bytes: the forward sums over
// input channels (inner = i), the error pass over output channels (inner = o).
std::vector<int8_t> weights_by_tap(const ConvGeometry& g, const int8_t* w_oihw, bool inner_is_output) {
  const int64_t O = g.out_channels, I = g.in_channels, k = g.kernel;
  std::vector<int8_t> out(static_cast<size_t>(O * I * k * k));
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < I; ++i)
      for (int64_t t = 0; t < k * k; ++t) {
        const int64_t at = inner_is_output ? (t * I + i) * O + o : (t * O + o) * I + i;
        out[static_cast<size_t>(at)] = w_oihw[(o * I + i) * k * k + t];
      }
  return out;
}

template <typename A>
int32_t dot(const A* a, const int8_t* b, int64_t n) {
  int64_t sum = 0;  // the callers keep the whole sum inside int32; int64 keeps the partial ones defined
  for (int64_t j = 0; j < n; ++j) sum += int64_t{a[j]} * int64_t{b[j]};
  return static_cast<int32_t>(sum);
}

}  // namespace

void conv_forward_s32(const ConvGeometry& g, const uint8_t* x_nhwc, const int8_t* w_oihw, int32_t* y_nhwc) {
  const int64_t I = g.in_channels, O = g.out_channels, k = g.kernel, Ho = g.out_height(), Wo = g.out_width();
  const std::vector<int8_t> w = weights_by_tap(g, w_oihw, false);
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) {
        int32_t* y = y_nhwc + ((n * Ho + oh) * Wo + ow) * O;
        for (int64_t o = 0; o < O; ++o) y[o] = 0;
        for (int64_t kh = 0; kh < k; ++kh)
          for (int64_t kw = 0; kw < k; ++kw) {
            const int64_t ih = oh * g.stride + kh - g.padding, iw = ow * g.stride + kw - g.padding;
            if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
            const uint8_t* x = x_nhwc + ((n * g.height + ih) * g.width + iw) * I;
            const int8_t* w_tap = w.data() + (kh * k + kw) * O * I;
            for (int64_t o = 0; o < O; ++o) y[o] += dot(x, w_tap + o * I, I);
          }
      }
}

namespace {
template <typename Code>
void conv_error(const ConvGeometry& g, const Code* dy_nhwc, const int8_t* w_oihw, int32_t* dx_nhwc) {
  const int64_t I = g.in_channels, O = g.out_channels, k = g.kernel, Ho = g.out_height(), Wo = g.out_width();
  const std::vector<int8_t> w = weights_by_tap(g, w_oihw, true);
  for (int64_t e = 0; e < g.batch * g.height * g.width * I; ++e) dx_nhwc[e] = 0;
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow) {
        const Code* dy = dy_nhwc + ((n * Ho + oh) * Wo + ow) * O;
        for (int64_t kh = 0; kh < k; ++kh)
          for (int64_t kw = 0; kw < k; ++kw) {
            const int64_t ih = oh * g.stride + kh - g.padding, iw = ow * g.stride + kw - g.padding;
            if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
            int32_t* dx = dx_nhwc + ((n * g.height + ih) * g.width + iw) * I;
            const int8_t* w_tap = w.data() + (kh * k + kw) * I * O;
            for (int64_t i = 0; i < I; ++i) dx[i] += dot(dy, w_tap + i * O, O);
          }
      }
}

}  // namespace

void conv_error_s32(const ConvGeometry& g, const int8_t* dy_nhwc, const int8_t* w_oihw, int32_t* dx_nhwc) {
  conv_error(g, dy_nhwc, w_oihw, dx_nhwc);
}
void conv_error_s32(const ConvGeometry& g, const uint8_t* dy_nhwc, const int8_t* w_oihw, int32_t* dx_nhwc) {
  conv_error(g, dy_nhwc, w_oihw, dx_nhwc);
}

void matmul_u8_s32(int64_t m, int64_t n, int64_t k, const uint8_t* a, int64_t a_row, int64_t a_column,
                   const int8_t* b, int32_t* c) {
  std::vector<uint8_t> row(static_cast<size_t>(k));
  std::vector<int8_t> column(static_cast<size_t>(k));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < k; ++j) row[static_cast<size_t>(j)] = a[r * a_row + j * a_column];
    for (int64_t col = 0; col < n; ++col) {
      for (int64_t j = 0; j < k; ++j) column[static_cast<size_t>(j)] = b[j * n + col];
      c[r * n + col] = dot(row.data(), column.data(), k);
    }
  }
}

void matmul_s32(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const int8_t* b, int32_t* c) {
  std::vector<int8_t> column(static_cast<size_t>(k));
  for (int64_t col = 0; col < n; ++col) {
    for (int64_t j = 0; j < k; ++j) column[static_cast<size_t>(j)] = b[j * n + col];
    for (int64_t row = 0; row < m; ++row) c[row * n + col] = dot(a + row * lda, column.data(), k);
  }
}

void reorder_bytes(const int64_t dims[3], const int64_t src_strides[3], const void* src, const int64_t dst_strides[3],
                   void* dst) {
  const auto* from = static_cast<const uint8_t*>(src);
  auto* to = static_cast<uint8_t*>(dst);
  for (int64_t a = 0; a < dims[0]; ++a)
    for (int64_t b = 0; b < dims[1]; ++b)
      for (int64_t c = 0; c < dims[2]; ++c)
        to[a * dst_strides[0] + b * dst_strides[1] + c * dst_strides[2]] =
            from[a * src_strides[0] + b * src_strides[1] + c * src_strides[2]];
}

}  // namespace fractrain::integer::plain
