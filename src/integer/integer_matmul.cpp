#include "fractrain/integer/integer_matmul.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <string>
#include <vector>

#include "conv_taps.h"  // FRACTRAIN_INTEGER_CLONES
#include "fractrain/integer/direct_weight_gradient.h"
#include "fractrain/integer/integer_conv.h"  // max_exact_terms
#include "fractrain/util/error.h"

namespace fractrain::integer {
namespace {

void check_matrix(const MatrixCodes& m, const char* what) {
  if (!m.codes.defined() || m.codes.dim() != 3 || m.codes.scalar_type() != at::kChar || !m.codes.is_contiguous())
    throw Error(std::string("integer matmul: the ") + what +
                " operand's codes must be a contiguous int8 [B, rows, cols]");
}

// out[r][s] = the sum over l in [0, L) of x[r][l] * y[s][l], for one batch entry: int32 sums of at most `chunk`
// products at a time (exact: chunk <= max_exact_terms), added into int64. Four rows of x at a time, so that each
// element of y, once loaded, serves four products (the compiler vectorises the loop over l).
FRACTRAIN_INTEGER_CLONES
void dot_rows(const int8_t* x, const int8_t* y, int64_t R, int64_t S, int64_t L, int64_t chunk, int64_t* out) {
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) {
    const int8_t *x0 = x + r * L, *x1 = x0 + L, *x2 = x1 + L, *x3 = x2 + L;
    for (int64_t s = 0; s < S; ++s) {
      const int8_t* ys = y + s * L;
      int64_t t0 = 0, t1 = 0, t2 = 0, t3 = 0;
      for (int64_t l0 = 0; l0 < L; l0 += chunk) {
        const int64_t l1 = std::min(L, l0 + chunk);
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int64_t l = l0; l < l1; ++l) {
          const int32_t v = ys[l];
          s0 += x0[l] * v;
          s1 += x1[l] * v;
          s2 += x2[l] * v;
          s3 += x3[l] * v;
        }
        t0 += s0;
        t1 += s1;
        t2 += s2;
        t3 += s3;
      }
      out[r * S + s] = t0;
      out[(r + 1) * S + s] = t1;
      out[(r + 2) * S + s] = t2;
      out[(r + 3) * S + s] = t3;
    }
  }
  for (; r < R; ++r) {
    const int8_t* xr = x + r * L;
    for (int64_t s = 0; s < S; ++s) {
      const int8_t* ys = y + s * L;
      int64_t total = 0;
      for (int64_t l0 = 0; l0 < L; l0 += chunk) {
        const int64_t l1 = std::min(L, l0 + chunk);
        int32_t sum = 0;
        for (int64_t l = l0; l < l1; ++l) sum += int32_t{xr[l]} * int32_t{ys[l]};
        total += sum;
      }
      out[r * S + s] = total;
    }
  }
}

// The same products on the weight gradient's kernel: a 1x1 convolution over L positions whose R input channels are
// x as unsigned bytes (the kernel's u8 operand: codes shifted back by `x_shift`) and whose S output channels are y.
// Its sums of xu * y give those of x * y less x_shift * (the sum of y's row).
void kernel_dot_rows(const int8_t* x, const int8_t* y, int64_t R, int64_t S, int64_t L, int x_shift,
                     int64_t max_terms, int64_t* out) {
  std::vector<uint8_t> x_unsigned(static_cast<size_t>(R * L));  // [R][L]: the kernel's planar input
  for (size_t e = 0; e < x_unsigned.size(); ++e) x_unsigned[e] = static_cast<uint8_t>(x[e] + x_shift);
  std::vector<int8_t> y_by_position(static_cast<size_t>(L * S));  // [L][S]: the kernel's gradient, channels last
  std::vector<int64_t> y_sums(static_cast<size_t>(S), 0);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t l = 0; l < L; ++l) {
      y_by_position[static_cast<size_t>(l * S + s)] = y[s * L + l];
      y_sums[static_cast<size_t>(s)] += y[s * L + l];
    }
  ConvGeometry g;
  g.batch = 1;
  g.in_channels = R;
  g.out_channels = S;
  g.height = 1;
  g.width = L;
  std::vector<int64_t> exact(static_cast<size_t>(S * R), 0);  // [S][1 tap][R]
  const DotProductIsa isa = cpu_has_avx512_vnni() ? DotProductIsa::Avx512Vnni : DotProductIsa::Portable;
  if (!direct_weight_products(g, x_unsigned.data(), x_unsigned.data(), y_by_position.data(), {0}, max_terms, isa,
                              exact.data()))
    throw Error("integer matmul: the dot-product kernel refused a row of " + std::to_string(L) + " terms");
  for (int64_t r = 0; r < R; ++r)
    for (int64_t s = 0; s < S; ++s)
      out[r * S + s] = exact[static_cast<size_t>(s * R + r)] - x_shift * y_sums[static_cast<size_t>(s)];
}

// The sum of each row of codes [rows][L].
void row_sums(const int8_t* codes, int64_t rows, int64_t L, int64_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    int64_t sum = 0;
    for (int64_t l = 0; l < L; ++l) sum += codes[r * L + l];
    out[r] = sum;
  }
}

}  // namespace

MatrixCodes quantize_matrix(const at::Tensor& x, int bits, QuantRange range, const PhiloxStream* noise,
                            uint64_t noise_first_index) {
  RECORD_USER_SCOPE("fractrain::integer_quantize_matrix");
  if (x.dim() < 2 || x.numel() == 0)
    throw Error("integer matmul: expected a non-empty operand [..., rows, cols], got " + c10::str(x.sizes()));
  const int64_t rows = x.size(-2), cols = x.size(-1), batch = x.numel() / (rows * cols);
  // Every element at one width and one range: quantize_features with the whole tensor as `batch` samples of
  // rows x cols, channels last, reads the elements in their own order (and numbers the noise that way).
  FeatureQuantization q;
  q.sample_bits.assign(static_cast<size_t>(batch), bits);
  q.range = range;
  q.noise = noise;
  q.noise_first_index = noise_first_index;
  q.signed_codes = true;
  FeatureCodes f = quantize_features(x.contiguous().view({batch, rows, cols}), FeatureLayout::ChannelsLast, q);
  MatrixCodes m;
  m.codes = f.codes.view({batch, rows, cols});
  m.scale = f.samples.front();
  m.bits = bits;
  return m;
}

at::Tensor dequantize_matrix(const MatrixCodes& m) {
  return (m.codes.to(at::kFloat) + static_cast<float>(m.scale.offset)) * m.scale.scale;
}

MatrixCodes transposed(const MatrixCodes& m) {
  MatrixCodes t = m;
  t.codes = m.codes.transpose(1, 2).contiguous();
  return t;
}

at::Tensor dot_products(const MatrixCodes& x, const MatrixCodes& y, CodeProduct product) {
  RECORD_USER_SCOPE("fractrain::integer_matmul");
  check_matrix(x, "left");
  check_matrix(y, "right");
  const int64_t B = x.codes.size(0), R = x.codes.size(1), L = x.codes.size(2), S = y.codes.size(1);
  if (y.codes.size(0) != B || y.codes.size(2) != L)
    throw Error("integer matmul: operands " + c10::str(x.codes.sizes()) + " and " + c10::str(y.codes.sizes()) +
                " do not share their batch and summed axis");
  const int64_t chunk = max_exact_terms(code_magnitude(x.bits, true), code_magnitude(y.bits, true));
  const int8_t* xc = x.codes.data_ptr<int8_t>();
  const int8_t* yc = y.codes.data_ptr<int8_t>();
  const int64_t ox = x.scale.offset, oy = y.scale.offset;
  const float scale = x.scale.scale * y.scale.scale;
  at::Tensor out = at::empty({B, R, S}, at::kFloat);
  float* o = out.data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> products(static_cast<size_t>(R * S)), x_sums(static_cast<size_t>(R)),
        y_sums(static_cast<size_t>(S));
    for (int64_t b = begin; b < end; ++b) {
      const int8_t* xb = xc + b * R * L;
      const int8_t* yb = yc + b * S * L;
      if (product == CodeProduct::DotKernel)
        kernel_dot_rows(xb, yb, R, S, L, int8_shift(x.bits),
                        max_exact_terms(code_magnitude(x.bits, false), code_magnitude(y.bits, true)), products.data());
      else
        dot_rows(xb, yb, R, S, L, chunk, products.data());
      row_sums(xb, R, L, x_sums.data());
      row_sums(yb, S, L, y_sums.data());
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s) {
          const int64_t exact = products[static_cast<size_t>(r * S + s)] + oy * x_sums[static_cast<size_t>(r)] +
                                ox * y_sums[static_cast<size_t>(s)] + L * ox * oy;
          o[(b * R + r) * S + s] = static_cast<float>(exact) * scale;
        }
    }
  });
  return out;
}

namespace reference {
at::Tensor dot_products(const MatrixCodes& x, const MatrixCodes& y) {
  const at::Tensor xv = (x.codes.to(at::kDouble) + x.scale.offset) * static_cast<double>(x.scale.scale);
  const at::Tensor yv = (y.codes.to(at::kDouble) + y.scale.offset) * static_cast<double>(y.scale.scale);
  return at::bmm(xv, yv.transpose(1, 2)).to(at::kFloat);
}
}  // namespace reference

}  // namespace fractrain::integer
