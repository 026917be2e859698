#include "integer_depthwise.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <string>
#include <vector>

#include "conv_taps.h"
#include "fractrain/util/error.h"

namespace fractrain::integer::detail {
namespace {

// The stored codes channels first, [N][C][positions]: the quantizer's planar copy, or a transposed one.
at::Tensor planes_of(const FeatureCodes& f) {
  return f.planar.defined() ? f.planar : f.codes.transpose(1, 2).contiguous();
}

void check_depthwise_weight(const WeightCodes& w, const ConvGeometry& g, const char* what) {
  const int64_t C = g.in_channels;
  const size_t ranges = w.axis == 0 ? static_cast<size_t>(C) : 1;
  if (w.codes.dim() != 4 || w.codes.size(0) != C || w.codes.size(1) != 1 || w.codes.size(2) != g.kernel ||
      w.codes.size(3) != g.kernel || w.channels.size() != ranges)
    throw Error(std::string("integer depthwise ") + what + ": weight codes " + c10::str(w.codes.sizes()) + " with " +
                std::to_string(w.channels.size()) + " ranges do not fit " + std::to_string(C) + " channels of " +
                std::to_string(g.kernel) + "x" + std::to_string(g.kernel));
}

// Channel c's weight range: its own (axis 0), or the one range of axis 1 (a depthwise filter has one input channel).
const CodeScale& weight_range(const WeightCodes& w, int64_t c) {
  return w.channels[w.axis == 0 ? static_cast<size_t>(c) : 0];
}

// [N, C, positions] float -> the caller's layout.
at::Tensor in_layout(at::Tensor planar, FeatureLayout layout) {
  return layout == FeatureLayout::ChannelsFirst ? planar : planar.transpose(1, 2).contiguous();
}

}  // namespace

// y[n, c, p] = s_x[n] s_w[c] * sum over p's valid taps t of (a[q(p, t)] + o_x)(b[c, t] + o_w), formed as
// sum a*b + o_w sum a + o_x sum b + K o_x o_w in int64, rounded to float once.
at::Tensor depthwise_forward(const ConvGeometry& g, const FeatureCodes& x, const WeightCodes& w,
                             const at::Tensor& bias, FeatureLayout layout) {
  RECORD_USER_SCOPE("fractrain::integer_depthwise_forward");
  const int64_t N = g.batch, C = g.in_channels, Q = in_positions(g), P = out_positions(g), k = g.kernel;
  check_features(x, N, C, Q, "depthwise forward");
  check_depthwise_weight(w, g, "forward");
  const at::Tensor codes = planes_of(x);
  const uint8_t* xa = codes.data_ptr<uint8_t>();
  const int8_t* wb = w.codes.data_ptr<int8_t>();
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  at::Tensor y = at::empty({N, C, P}, at::kFloat);
  float* out = y.data_ptr<float>();
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const uint8_t* a = xa + nc * Q;
      const int8_t* filter = wb + c * k * k;
      const int64_t ox = x.samples[n].offset, ow = weight_range(w, c).offset;
      const float scale = x.samples[n].scale * weight_range(w, c).scale, shift = b ? b[c] : 0.0f;
      for (int64_t oh = 0; oh < g.out_height(); ++oh)
        for (int64_t owc = 0; owc < g.out_width(); ++owc) {
          int64_t products = 0, input_sum = 0, weight_sum = 0, terms = 0;
          for (int64_t kh = 0; kh < k; ++kh)
            for (int64_t kw = 0; kw < k; ++kw) {
              const int64_t q = input_position(g, oh, owc, kh, kw);
              if (q < 0) continue;
              products += int64_t{a[q]} * filter[kh * k + kw];
              input_sum += a[q];
              weight_sum += filter[kh * k + kw];
              ++terms;
            }
          const int64_t exact = products + ow * input_sum + ox * weight_sum + terms * ox * ow;
          out[nc * P + oh * g.out_width() + owc] = static_cast<float>(exact) * scale + shift;
        }
    }
  });
  return in_layout(y, layout);
}

// dx[n, c, q] = s_g[n] s_w[c] * the sum over the (output position p, tap t) pairs that read q of
// (d[p] + o_g)(b[c, t] + o_w): scattered from each output position, with the same corrections.
at::Tensor depthwise_backward_data(const ConvGeometry& g, const FeatureCodes& dy, const WeightCodes& w,
                                   FeatureLayout layout) {
  RECORD_USER_SCOPE("fractrain::integer_depthwise_backward_data");
  const int64_t N = g.batch, C = g.in_channels, Q = in_positions(g), P = out_positions(g), k = g.kernel;
  check_features(dy, N, C, P, "depthwise error backward");
  check_depthwise_weight(w, g, "error backward");
  const at::Tensor codes = planes_of(dy);
  const int8_t* da = codes.data_ptr<int8_t>();
  const int8_t* wb = w.codes.data_ptr<int8_t>();
  at::Tensor dx = at::empty({N, C, Q}, at::kFloat);
  float* out = dx.data_ptr<float>();
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    // Per input position: the products, the gradient codes and weight codes that reach it, and how many pairs.
    std::vector<int64_t> products(static_cast<size_t>(Q)), gradient_sum(products), weight_sum(products),
        terms(products);
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const int8_t* d = da + nc * P;
      const int8_t* filter = wb + c * k * k;
      std::fill(products.begin(), products.end(), 0);
      std::fill(gradient_sum.begin(), gradient_sum.end(), 0);
      std::fill(weight_sum.begin(), weight_sum.end(), 0);
      std::fill(terms.begin(), terms.end(), 0);
      for (int64_t oh = 0; oh < g.out_height(); ++oh)
        for (int64_t owc = 0; owc < g.out_width(); ++owc) {
          const int64_t code = d[oh * g.out_width() + owc];
          for (int64_t kh = 0; kh < k; ++kh)
            for (int64_t kw = 0; kw < k; ++kw) {
              const int64_t q = input_position(g, oh, owc, kh, kw);
              if (q < 0) continue;
              const size_t e = static_cast<size_t>(q);
              products[e] += code * filter[kh * k + kw];
              gradient_sum[e] += code;
              weight_sum[e] += filter[kh * k + kw];
              ++terms[e];
            }
        }
      const int64_t og = dy.samples[n].offset, ow = weight_range(w, c).offset;
      const float scale = dy.samples[n].scale * weight_range(w, c).scale;
      for (int64_t q = 0; q < Q; ++q) {
        const size_t e = static_cast<size_t>(q);
        const int64_t exact = products[e] + ow * gradient_sum[e] + og * weight_sum[e] + terms[e] * og * ow;
        out[nc * Q + q] = static_cast<float>(exact) * scale;
      }
    }
  });
  return in_layout(dx, layout);
}

// dw[c, t] = the sum over samples n of s_x[n] s_g[n] * the sum over the output positions p where tap t is valid of
// (a[q(p, t)] + o_x)(d[p] + o_g): exact per sample in int64, scaled in double, rounded to float once at the end.
at::Tensor depthwise_backward_weight(const ConvGeometry& g, const FeatureCodes& x, const FeatureCodes& dy) {
  RECORD_USER_SCOPE("fractrain::integer_depthwise_backward_weight");
  const int64_t N = g.batch, C = g.in_channels, Q = in_positions(g), P = out_positions(g), k = g.kernel,
                taps = taps_of(g);
  check_features(x, N, C, Q, "depthwise weight gradient");
  check_features(dy, N, C, P, "depthwise weight gradient");
  const at::Tensor x_planes = planes_of(x), dy_planes = planes_of(dy);
  const uint8_t* xa = x_planes.data_ptr<uint8_t>();
  const int8_t* da = dy_planes.data_ptr<int8_t>();
  at::Tensor dw = at::empty({C, 1, k, k}, at::kFloat);
  float* out = dw.data_ptr<float>();
  at::parallel_for(0, C, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> products(static_cast<size_t>(taps)), input_sum(products), gradient_sum(products),
        terms(products);
    std::vector<double> total(products.size());
    for (int64_t c = begin; c < end; ++c) {
      std::fill(total.begin(), total.end(), 0.0);
      for (int64_t n = 0; n < N; ++n) {
        const uint8_t* a = xa + (n * C + c) * Q;
        const int8_t* d = da + (n * C + c) * P;
        std::fill(products.begin(), products.end(), 0);
        std::fill(input_sum.begin(), input_sum.end(), 0);
        std::fill(gradient_sum.begin(), gradient_sum.end(), 0);
        std::fill(terms.begin(), terms.end(), 0);
        for (int64_t oh = 0; oh < g.out_height(); ++oh)
          for (int64_t owc = 0; owc < g.out_width(); ++owc) {
            const int64_t code = d[oh * g.out_width() + owc];
            for (int64_t t = 0; t < taps; ++t) {
              const int64_t q = input_position(g, oh, owc, t / k, t % k);
              if (q < 0) continue;
              const size_t e = static_cast<size_t>(t);
              products[e] += code * a[q];
              input_sum[e] += a[q];
              gradient_sum[e] += code;
              ++terms[e];
            }
          }
        const int64_t ox = x.samples[n].offset, og = dy.samples[n].offset;
        const double scale = static_cast<double>(x.samples[n].scale) * static_cast<double>(dy.samples[n].scale);
        for (size_t e = 0; e < total.size(); ++e)
          total[e] += static_cast<double>(products[e] + og * input_sum[e] + ox * gradient_sum[e] + terms[e] * ox * og) *
                      scale;
      }
      for (int64_t t = 0; t < taps; ++t) out[c * taps + t] = static_cast<float>(total[static_cast<size_t>(t)]);
    }
  });
  return dw;
}

}  // namespace fractrain::integer::detail
