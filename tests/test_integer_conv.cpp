// Integer execution's passes (src/integer) against their float64 specification (integer_conv.h reference::)
// and against the simulated FP32 path on the same quantization (snapped zero points, the error pass's weight
// per input channel).
//
// Tolerances. Against the reference: the integer sums are exact, and only the last steps round (the int64 sum
// to float, times the float scale: 2^-24 relative each), so 1e-6 of the largest magnitude. Against simulated
// FP32: the float convolution rounds every partial sum of up to K products (K = the reduction length, at most
// 360 here), about K * 2^-24 of the largest term in the worst case; 1e-4 of the result's largest magnitude.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "fractrain/integer/corrected_planes.h"
#include "fractrain/integer/integer_conv.h"
#include "fractrain/integer/integer_support.h"
#include "fractrain/quant/fake_quantize.h"
#include "fractrain/util/cpu_features.h"
#include "fractrain/util/error.h"
#include "integer_test_support.h"

namespace fractrain::integer {
namespace {

using namespace test_support;  // integer_test_support.h


using Case = ConvCase;

// Odd sizes, stride 2 with and without padding, 1x1 (also strided: a projection shortcut), a non-square input.
const std::vector<Case> kCases = {
    {3, 5, 7, 9, 9, 3, 1, 1}, {2, 4, 6, 9, 7, 3, 2, 1}, {3, 6, 5, 8, 8, 1, 1, 0},
    {2, 8, 4, 10, 10, 1, 2, 0}, {2, 3, 5, 7, 7, 3, 2, 0}, {4, 16, 16, 6, 6, 3, 1, 1},
};

QuantRange range_of(const at::Tensor& x) { return tensor_range(x); }

FeatureCodes activation_codes(const at::Tensor& x, const std::vector<int>& bits) {
  FeatureQuantization q;
  q.sample_bits = bits;
  q.range = range_of(x);
  return quantize_features(x.contiguous(), FeatureLayout::ChannelsFirst, q);
}

FeatureCodes gradient_codes(const at::Tensor& g, const std::vector<int>& bits, const PhiloxStream& noise) {
  FeatureQuantization q;
  q.sample_bits = bits;
  q.range = range_of(g);
  q.noise = &noise;
  q.signed_codes = true;
  q.channel_major = true;
  return quantize_features(g.contiguous(), FeatureLayout::ChannelsFirst, q);
}

TEST(IntegerCodes, StandForTheFakeQuantizersValues) {
  torch::manual_seed(1);
  const at::Tensor x = torch::randn({4, 3, 5, 5}) + 0.3;
  const PhiloxStream noise{7, 11};
  for (int bits : {2, 5, 8}) {
    for (bool stochastic : {false, true}) {
      FeatureQuantization q;
      q.sample_bits = std::vector<int>(4, bits);
      q.range = range_of(x);
      q.noise = stochastic ? &noise : nullptr;
      q.signed_codes = stochastic;
      const FeatureCodes codes = quantize_features(x, FeatureLayout::ChannelsFirst, q);
      const at::Tensor fq = fake_quantize(x, bits, q.range, snapped(stochastic ? Rounding::Stochastic : Rounding::Nearest, noise));
      expect_close(dequantize_features(codes, FeatureLayout::ChannelsFirst, x.sizes()), fq, 1e-6,
                   "bits " + std::to_string(bits));
    }
  }
  // Per sample widths, and a linear layer's channels-last layout.
  const at::Tensor t = torch::randn({3, 4, 6});
  FeatureQuantization q;
  q.sample_bits = {3, 8, 5};
  q.range = range_of(t);
  const FeatureCodes codes = quantize_features(t, FeatureLayout::ChannelsLast, q);
  expect_close(dequantize_features(codes, FeatureLayout::ChannelsLast, t.sizes()),
               fake_quantize_rows(t, q.sample_bits, q.range, snapped()), 1e-6, "rows");
}

// Channels-first features are quantized plane by plane and transposed into the channels-last codes the products
// read: in 16 x 16 tiles (integer_codes.cpp) with the rest by a plain loop. Channel counts and positions below, at
// and around whole tiles; the planar copy is the codes before the transposition.
TEST(IntegerCodes, ChannelsLastCodesAreThePlanesTransposed) {
  torch::manual_seed(3);
  const PhiloxStream noise{5, 9};
  for (int64_t channels : {1, 3, 16, 17, 35, 64})
    for (auto [height, width] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 5}, {4, 4}, {7, 7}, {14, 14}, {32, 32}})
      for (bool gradient : {false, true}) {
        const at::Tensor x = torch::randn({2, channels, height, width});
        FeatureQuantization q;
        q.sample_bits = std::vector<int>{8, 5};
        q.range = range_of(x);
        q.noise = gradient ? &noise : nullptr;
        q.signed_codes = gradient;
        q.planar = true;
        const FeatureCodes codes = quantize_features(x, FeatureLayout::ChannelsFirst, q);
        const std::string what = std::to_string(channels) + " channels, " + std::to_string(height) + "x" +
                                 std::to_string(width) + (gradient ? ", signed" : ", unsigned");
        ASSERT_TRUE(at::equal(codes.codes, codes.planar.transpose(1, 2))) << what;
        const at::Tensor sums = codes.planar.to(at::kInt).sum(1, /*keepdim=*/false, at::kInt);
        ASSERT_TRUE(at::equal(codes.position_sums, sums)) << what;
        if (channels == 35 && height == 14) {
          const at::Tensor fq = fake_quantize_rows(x.flatten(1), q.sample_bits, q.range,
                                                   snapped(gradient ? Rounding::Stochastic : Rounding::Nearest, noise));
          expect_close(dequantize_features(codes, FeatureLayout::ChannelsFirst, x.sizes()).flatten(1), fq, 1e-6, what);
        }
      }
}

// The codes of some samples only (FeatureQuantization::samples, the backward split by sample) are those samples'
// codes from the whole tensor, bit for bit, with each sample's stochastic-rounding noise as in the whole (a
// nonzero first noise index too) and the planar and channel-major copies; select_samples gives the same.
TEST(IntegerCodes, CodesOfSomeSamplesEqualThoseOfTheWhole) {
  torch::manual_seed(16);
  const PhiloxStream noise{9, 4};
  const std::vector<int64_t> chosen{4, 0, 5, 2};
  for (FeatureLayout layout : {FeatureLayout::ChannelsFirst, FeatureLayout::ChannelsLast}) {
    const at::Tensor x = torch::randn({6, 5, 7, 3});
    FeatureQuantization all;
    all.sample_bits = {8, 6, 3, 8, 5, 7};
    all.range = range_of(x);
    all.noise = &noise;
    all.noise_first_index = 1000;
    all.signed_codes = true;
    all.channel_major = true;
    all.planar = layout == FeatureLayout::ChannelsFirst;
    FeatureQuantization some = all;
    some.samples = chosen;
    some.sample_bits.clear();
    for (int64_t n : chosen) some.sample_bits.push_back(all.sample_bits[static_cast<size_t>(n)]);
    const FeatureCodes whole = quantize_features(x, layout, all), part = quantize_features(x, layout, some);
    for (const FeatureCodes& picked : {part, select_samples(whole, chosen)}) {
      const at::Tensor index = torch::tensor(chosen, torch::kLong);
      EXPECT_TRUE(torch::equal(picked.codes, whole.codes.index_select(0, index)));
      EXPECT_TRUE(torch::equal(picked.position_sums, whole.position_sums.index_select(0, index)));
      EXPECT_TRUE(torch::equal(picked.channel_major.view({picked.channels, 4, -1}),
                               whole.channel_major.view({whole.channels, 6, -1}).index_select(1, index)));
      if (all.planar) {
        EXPECT_TRUE(torch::equal(picked.planar, whole.planar.index_select(0, index)));
      }
      for (size_t j = 0; j < chosen.size(); ++j) {
        EXPECT_EQ(picked.samples[j].scale, whole.samples[static_cast<size_t>(chosen[j])].scale);
        EXPECT_EQ(picked.samples[j].offset, whole.samples[static_cast<size_t>(chosen[j])].offset);
        EXPECT_EQ(picked.bits[j], whole.bits[static_cast<size_t>(chosen[j])]);
      }
    }
  }
  EXPECT_EQ(select_samples(quantize_features(torch::randn({2, 3, 4}), FeatureLayout::ChannelsLast, [] {
              FeatureQuantization q;
              q.sample_bits = {4, 4};
              q.range = {-1.0f, 1.0f};
              q.signed_codes = true;
              q.channel_major = true;
              return q;
            }()), {}).batch(), 0);
}

TEST(IntegerCodes, WeightsPerOutputAndInputChannel) {
  torch::manual_seed(2);
  const at::Tensor w = torch::randn({6, 4, 3, 3});
  for (int bits : {2, 4, 8}) {
    expect_close(dequantize_weight(quantize_weight(w, bits, 0)), fake_quantize_per_channel(w, bits, snapped()), 1e-6,
                 "per output channel");
    const at::Tensor per_input =
        fake_quantize_per_channel(w.transpose(0, 1).contiguous(), bits, snapped()).transpose(0, 1);
    expect_close(dequantize_weight(quantize_weight(w, bits, 1)), per_input, 1e-6, "per input channel");
  }
}

TEST(IntegerCodes, RefuseWidthsAboveEightBits) {
  FeatureQuantization q;
  q.sample_bits = {12};
  q.range = {-1.0f, 1.0f};
  EXPECT_THROW(quantize_features(torch::randn({1, 2, 3}), FeatureLayout::ChannelsFirst, q), Error);
}

TEST(IntegerConv, ForwardEqualsReferenceAndSimulated) {
  ASSUME_INTEGER_SUPPORT();
  torch::manual_seed(3);
  for (const Case& c : kCases) {
    for (bool per_sample : {false, true}) {
      for (int bits : {2, 4, 8}) {
        const ConvGeometry g = geometry(c);
        // Post-ReLU activations (range [0, hi]) and a range excluding 0, where padding is not a code.
        for (double shift : {0.0, 2.0}) {
          const at::Tensor x = torch::rand({c.batch, c.in, c.height, c.width}) + shift;
          const at::Tensor w = torch::randn({c.out, c.in, c.kernel, c.kernel});
          const at::Tensor bias = torch::randn({c.out});
          const std::vector<int> xbits = widths(c.batch, bits, per_sample);
          const FeatureCodes xc = activation_codes(x, xbits);
          const WeightCodes wc = quantize_weight(w, bits, 0);
          const at::Tensor y = conv_forward(g, xc, wc, bias, FeatureLayout::ChannelsFirst)
                                   .view({c.batch, c.out, g.out_height(), g.out_width()});
          const std::string what = "forward case " + std::to_string(&c - kCases.data()) + " bits " +
                                   std::to_string(bits) + (per_sample ? " per sample" : "");
          expect_close(y, reference::conv_forward(g, xc, wc, bias, FeatureLayout::ChannelsFirst).view_as(y), 1e-6,
                       what);
          const at::Tensor xq = fake_quantize_rows(x, xbits, range_of(x), snapped());
          const at::Tensor wq = fake_quantize_per_channel(w, bits, snapped());
          expect_close(y, torch::conv2d(xq, wq, bias, c.stride, c.padding), 1e-4, what + " vs simulated");
        }
      }
    }
  }
}

TEST(IntegerConv, ErrorBackwardEqualsReferenceAndSimulated) {
  ASSUME_INTEGER_SUPPORT();
  torch::manual_seed(4);
  const PhiloxStream noise{3, 5};
  for (const Case& c : kCases) {
    for (bool per_sample : {false, true}) {
      for (int bits : {2, 5, 8}) {
        const ConvGeometry g = geometry(c);
        const at::Tensor dy = torch::randn({c.batch, c.out, g.out_height(), g.out_width()}) * 1e-3;
        const at::Tensor w = torch::randn({c.out, c.in, c.kernel, c.kernel});
        const std::vector<int> gbits = widths(c.batch, bits, per_sample);
        const FeatureCodes gc = gradient_codes(dy, gbits, noise);
        const WeightCodes wc = quantize_weight(w, bits, 1);
        const at::Tensor dx = conv_backward_data(g, gc, wc, FeatureLayout::ChannelsFirst)
                                  .view({c.batch, c.in, c.height, c.width});
        const std::string what = "error backward case " + std::to_string(&c - kCases.data()) + " bits " +
                                 std::to_string(bits) + (per_sample ? " per sample" : "");
        expect_close(dx, reference::conv_backward_data(g, gc, wc, FeatureLayout::ChannelsFirst).view_as(dx), 1e-6,
                     what);
        const at::Tensor gq = fake_quantize_rows(dy, gbits, range_of(dy), snapped(Rounding::Stochastic, noise));
        const at::Tensor wq = dequantize_weight(wc);
        auto grads = at::convolution_backward(gq, torch::zeros({c.batch, c.in, c.height, c.width}), wq, at::nullopt,
                                              {c.stride, c.stride}, {c.padding, c.padding}, {1, 1}, false, {0, 0}, 1,
                                              {true, false, false});
        expect_close(dx, std::get<0>(grads), 1e-4, what + " vs simulated");
      }
    }
  }
}

// Ranges far from zero give offsets so large that the corrected sums leave int32 (corrections_fit_int32 says no):
// those samples take corrected_rows (exact at any offsets) and its transposition into planes. Forward: inputs in
// [1000, 1001] at 8 bits (offset about 255,000); error backward: gradients in [5, 5.002] (offset about 640,000);
// weights in [1, 2], so that no term cancels another and the sums (over 10^9 in magnitude) do leave int32.
TEST(IntegerConv, CorrectionsBeyondInt32TakeTheWideLoop) {
  ASSUME_INTEGER_SUPPORT();
  torch::manual_seed(5);
  const PhiloxStream noise{3, 6};
  for (const Case& c : {kCases[0], kCases[1], kCases[5]}) {
    const ConvGeometry g = geometry(c);
    const std::string what = "case " + std::to_string(c.in) + "->" + std::to_string(c.out);
    const at::Tensor w = torch::rand({c.out, c.in, c.kernel, c.kernel}) + 1.0;
    const std::vector<int> bits = widths(c.batch, 8, false);

    const FeatureCodes xc = activation_codes(torch::rand({c.batch, c.in, c.height, c.width}) + 1000.0, bits);
    const WeightCodes wf = quantize_weight(w, 8, 0);
    ASSERT_FALSE(corrections_fit_int32(c.in * c.kernel * c.kernel, xc.samples[0].offset, 0)) << what;
    expect_close(conv_forward(g, xc, wf, at::Tensor(), FeatureLayout::ChannelsFirst),
                 reference::conv_forward(g, xc, wf, at::Tensor(), FeatureLayout::ChannelsFirst), 1e-6,
                 "forward " + what);

    const at::Tensor dy = torch::rand({c.batch, c.out, g.out_height(), g.out_width()}) * 2e-3 + 5.0;
    const FeatureCodes gc = gradient_codes(dy, bits, noise);
    const WeightCodes we = quantize_weight(w, 8, 1);
    ASSERT_FALSE(corrections_fit_int32(c.out * c.kernel * c.kernel, gc.samples[0].offset, 0)) << what;
    expect_close(conv_backward_data(g, gc, we, FeatureLayout::ChannelsFirst),
                 reference::conv_backward_data(g, gc, we, FeatureLayout::ChannelsFirst), 1e-6,
                 "error backward " + what);

    // Offsets near 2^23-2^24 on both sides (inputs in [600, 600.01], weights in [600, 600.02]): sums near 10^15-10^16,
    // beyond double's exact integers where there are more than ~40 terms, formed in 128-bit integers there;
    // channels first and channels last.
    const FeatureCodes far = activation_codes(torch::rand({c.batch, c.in, c.height, c.width}) * 0.01 + 600.0, bits);
    const WeightCodes wfar = quantize_weight(torch::rand({c.out, c.in, c.kernel, c.kernel}) * 0.02 + 600.0, 8, 0);
    ASSERT_GT(std::abs(far.samples[0].offset), 1 << 23) << what;
    ASSERT_GT(std::abs(wfar.channels[0].offset), 1 << 22) << what;
    for (FeatureLayout layout : {FeatureLayout::ChannelsFirst, FeatureLayout::ChannelsLast})
      expect_close(conv_forward(g, far, wfar, at::Tensor(), layout),
                   reference::conv_forward(g, far, wfar, at::Tensor(), layout), 1e-6, "far forward " + what);
  }
}

// The forward and error passes run their product per thread on blocks of samples that stay in cache
// (integer_conv.cpp, kBlockSumBytes = 256 KiB: 4 samples of 16 x 32 x 32 sums). 11 samples on 2 threads make blocks
// of 4 + 2 and 4 + 1, i.e. products of three batch sizes running concurrently; 3 samples take the unblocked path.
TEST(IntegerConv, ProductsInBlocksPerThreadEqualTheReference) {
  ASSUME_INTEGER_SUPPORT();
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  torch::manual_seed(8);
  const PhiloxStream noise{2, 6};
  for (int64_t batch : {11, 3}) {
    for (bool per_sample : {false, true}) {
      const Case c{batch, 16, 16, 32, 32, 3, 1, 1};
      const ConvGeometry g = geometry(c);
      const std::string what = std::to_string(batch) + " samples" + (per_sample ? ", per-sample widths" : "");
      const at::Tensor x = torch::rand({c.batch, c.in, c.height, c.width});
      const at::Tensor w = torch::randn({c.out, c.in, c.kernel, c.kernel});
      const FeatureCodes xc = activation_codes(x, widths(c.batch, 8, per_sample));
      const WeightCodes forward_weights = quantize_weight(w, 8, 0);
      const at::Tensor y = conv_forward(g, xc, forward_weights, {}, FeatureLayout::ChannelsFirst);
      expect_close(y, reference::conv_forward(g, xc, forward_weights, {}, FeatureLayout::ChannelsFirst).view_as(y),
                   1e-6, "forward, " + what);
      const at::Tensor dy = torch::randn({c.batch, c.out, c.height, c.width}) * 1e-3;
      const FeatureCodes gc = gradient_codes(dy, widths(c.batch, 8, per_sample), noise);
      const WeightCodes error_weights = quantize_weight(w, 8, 1);
      const at::Tensor dx = conv_backward_data(g, gc, error_weights, FeatureLayout::ChannelsLast);
      expect_close(dx, reference::conv_backward_data(g, gc, error_weights, FeatureLayout::ChannelsLast).view_as(dx),
                   1e-6, "error backward, " + what);
    }
  }
  at::set_num_threads(threads);
}

TEST(IntegerConv, WeightGradientEqualsReferenceAndSimulated) {
  ASSUME_INTEGER_SUPPORT();
  torch::manual_seed(5);
  const PhiloxStream noise{9, 1};
  for (const Case& c : kCases) {
    for (bool per_sample : {false, true}) {
      for (int bits : {3, 8}) {
        const ConvGeometry g = geometry(c);
        const at::Tensor x = torch::rand({c.batch, c.in, c.height, c.width}) - 0.2;
        const at::Tensor dy = torch::randn({c.batch, c.out, g.out_height(), g.out_width()});
        // DFQ: samples in groups of (activation, gradient) widths, interleaved.
        const std::vector<int> xbits = widths(c.batch, bits, per_sample), gbits = widths(c.batch, std::min(bits + 1, 8), per_sample);
        const FeatureCodes xc = activation_codes(x, xbits);
        const FeatureCodes gc = gradient_codes(dy, gbits, noise);
        const at::Tensor dw = conv_backward_weight(g, xc, gc);
        const std::string what = "weight gradient case " + std::to_string(&c - kCases.data()) + " bits " +
                                 std::to_string(bits) + (per_sample ? " per sample" : "");
        expect_close(dw, reference::conv_backward_weight(g, xc, gc), 1e-6, what);
        // The swapped convolution and the im2col patches form the same exact integer sums: equal to the bit.
        EXPECT_TRUE(at::equal(dw, conv_backward_weight(g, xc, gc, WeightGradientProduct::Patches))) << what;
        const at::Tensor xq = fake_quantize_rows(x, xbits, range_of(x), snapped());
        const at::Tensor gq = fake_quantize_rows(dy, gbits, range_of(dy), snapped(Rounding::Stochastic, noise));
        auto grads = at::convolution_backward(gq, xq, torch::zeros({c.out, c.in, c.kernel, c.kernel}), at::nullopt,
                                              {c.stride, c.stride}, {c.padding, c.padding}, {1, 1}, false, {0, 0}, 1,
                                              {false, true, false});
        expect_close(dw, std::get<1>(grads), 1e-4, what + " vs simulated");
        expect_close(bias_gradient(gc), gq.sum({0, 2, 3}), 1e-5, what + " bias");
      }
    }
  }
}

// oneDNN's int8 products against the plain loops that stand in for them on other CPUs (src/integer/plain_int8.h):
// both form exact integer sums and the same corrections follow, so every pass must be equal to the bit, including
// the blocked products of 11 samples on 2 threads and every weight-gradient product. Needs the real support: on
// other CPUs both sides would be the loops. The widths go up to what this CPU adds exactly (8 bits with 8-bit dot
// products, 7 without: integer_support.h), on random values and on the extremes (inputs and gradients at the top
// of their ranges, weights at the bottom: every pair of products at 2 x 127 x -128 on a 7-bit CPU).
TEST(IntegerConv, OneDnnProductsEqualThePlainLoops) {
  if (!integer_support().available) GTEST_SKIP() << integer_support().detail;
  const int most = integer_support().max_unsigned_bits;
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  torch::manual_seed(13);
  const PhiloxStream noise{4, 4};
  std::vector<Case> cases = kCases;
  cases.push_back({11, 16, 16, 32, 32, 3, 1, 1});
  cases.push_back({11, 16, 32, 16, 16, 1, 2, 0});  // a projection shortcut, in blocks on 2 threads
  for (const Case& c : cases)
    for (bool extremes : {false, true}) {
      const ConvGeometry g = geometry(c);
      const std::string what = "case " + std::to_string(&c - cases.data()) + (extremes ? " at the extremes" : "");
      at::Tensor x = torch::rand({c.batch, c.in, c.height, c.width});
      at::Tensor w = torch::randn({c.out, c.in, c.kernel, c.kernel});
      at::Tensor dy = torch::randn({c.batch, c.out, g.out_height(), g.out_width()});
      if (extremes) {  // one element at the other end of each range, the rest at the end with the largest codes
        x = torch::ones_like(x);
        x.view({-1})[0] = 0.0f;
        w = -torch::ones_like(w);  // one +1 in every output channel's and every input channel's range
        for (int64_t o = 0; o < c.out; ++o) w[o][o % c.in][0][0] = 1.0f;
        for (int64_t i = 0; i < c.in; ++i) w[i % c.out][i][0][0] = 1.0f;
        dy = torch::ones_like(dy);
        dy.view({-1})[0] = -1.0f;
      }
      // DFQ-like widths from 2 bits up to `most`, the first sample at `most` (so that the extremes reach the
      // largest codes even in the 2-sample cases).
      std::vector<int> xbits = widths(c.batch, most, true), gbits = xbits;
      std::rotate(gbits.begin(), gbits.begin() + 1, gbits.end());
      for (std::vector<int>* bits : {&xbits, &gbits}) {
        for (int& b : *bits) b = std::min(b, most);
        bits->front() = most;
      }
      const FeatureCodes xc = activation_codes(x, xbits);
      const FeatureCodes gc = gradient_codes(dy, gbits, noise);
      const WeightCodes forward_weights = quantize_weight(w, 8, 0), error_weights = quantize_weight(w, 8, 1);
      const auto passes = [&] {
        std::vector<at::Tensor> out = {conv_forward(g, xc, forward_weights, {}, FeatureLayout::ChannelsFirst),
                                       conv_backward_data(g, gc, error_weights, FeatureLayout::ChannelsLast)};
        for (WeightGradientProduct product : {WeightGradientProduct::Fastest, WeightGradientProduct::Patches})
          out.push_back(conv_backward_weight(g, xc, gc, product));
        return out;
      };
      // Several times: oneDNN's strided 1x1 int8 kernel went wrong in some runs and not others, depending on what
      // had run before (onednn_int8.cpp, gathers_unit_stride).
      std::vector<std::vector<at::Tensor>> onednn;
      for (int run = 0; run < 4; ++run) onednn.push_back(passes());
      const AssumeIntegerSupportForTests loops(AssumeIntegerSupportForTests::Products::PlainLoops);
      ASSERT_TRUE(integer_support().plain_loops);
      const std::vector<at::Tensor> plain = passes();
      for (size_t run = 0; run < onednn.size(); ++run)
        for (size_t k = 0; k < plain.size(); ++k)
          EXPECT_TRUE(at::equal(onednn[run][k], plain[k]))
              << what << ", pass " << k << " (forward, error, dW fastest, patches), run " << run;
    }
  at::set_num_threads(threads);
}

TEST(IntegerConv, LinearLayerAsOneByOneOverTokens) {
  ASSUME_INTEGER_SUPPORT();
  torch::manual_seed(6);
  const PhiloxStream noise{1, 2};
  ConvGeometry g;
  g.batch = 5;
  g.in_channels = 12;
  g.out_channels = 7;
  g.height = 3;  // tokens
  g.width = 1;
  const at::Tensor x = torch::randn({5, 3, 12}), w = torch::randn({7, 12}), b = torch::randn({7});
  const at::Tensor dy = torch::randn({5, 3, 7});
  FeatureQuantization qx;
  qx.sample_bits = {8, 4, 8, 6, 8};
  qx.range = range_of(x);
  const FeatureCodes xc = quantize_features(x, FeatureLayout::ChannelsLast, qx);
  FeatureQuantization qg;
  qg.sample_bits = {6, 8, 8, 6, 8};
  qg.range = range_of(dy);
  qg.noise = &noise;
  qg.signed_codes = qg.channel_major = true;
  const FeatureCodes gc = quantize_features(dy, FeatureLayout::ChannelsLast, qg);
  const at::Tensor xq = fake_quantize_rows(x, qx.sample_bits, qx.range, snapped());
  const at::Tensor gq = fake_quantize_rows(dy, qg.sample_bits, qg.range, snapped(Rounding::Stochastic, noise));
  const WeightCodes w_forward = quantize_weight(w, 8, 0), w_error = quantize_weight(w, 8, 1);
  const at::Tensor wq = dequantize_weight(w_forward), wq_error = dequantize_weight(w_error);

  expect_close(conv_forward(g, xc, w_forward, b, FeatureLayout::ChannelsLast).view({5, 3, 7}), torch::linear(xq, wq, b),
               1e-4, "forward");
  expect_close(conv_backward_data(g, gc, w_error, FeatureLayout::ChannelsLast).view({5, 3, 12}), gq.matmul(wq_error),
               1e-4, "error backward");
  expect_close(conv_backward_weight(g, xc, gc).view({7, 12}),
               gq.reshape({-1, 7}).t().mm(xq.reshape({-1, 12})), 1e-4, "weight gradient");
}

// The weight gradient sums over batch x positions: with every code at its largest magnitude (-128 after the
// int8 shift) one int32 sum would overflow; the chunked sum must still be exact.
TEST(IntegerConv, WeightGradientCannotOverflowInt32) {
  ASSUME_INTEGER_SUPPORT();
  ConvGeometry g;
  g.batch = 2;
  g.in_channels = 1;
  g.out_channels = 1;
  g.height = 260;
  g.width = 260;  // 2 x 67600 = 135200 terms; 135200 * 128 * 128 > 2^31
  ASSERT_GT(g.batch * g.height * g.width * 128 * 128, int64_t{std::numeric_limits<int32_t>::max()});
  const at::Tensor x = torch::zeros({2, 1, 260, 260});  // all at lo: code 0, int8 -128
  const at::Tensor dy = torch::full({2, 1, 260, 260}, -1.0f);
  FeatureQuantization qx;
  qx.sample_bits = {8, 8};
  qx.range = {0.0f, 1.0f};
  const FeatureCodes xc = quantize_features(x, FeatureLayout::ChannelsFirst, qx);
  const PhiloxStream noise{1, 1};
  FeatureQuantization qg;
  qg.sample_bits = {8, 8};
  qg.range = {-1.0f, 1.0f};
  qg.noise = &noise;
  qg.signed_codes = qg.channel_major = true;
  const FeatureCodes gc = quantize_features(dy, FeatureLayout::ChannelsFirst, qg);
  ASSERT_EQ(gc.codes.min().item<int>(), -128);
  const at::Tensor dw = conv_backward_weight(g, xc, gc);
  EXPECT_EQ(dw.item<float>(), 0.0f);  // x is 0 everywhere: the corrections must cancel the huge code product
  const at::Tensor x1 = torch::ones({2, 1, 260, 260}) * 0.5f;
  qx.range = {0.0f, 1.0f};
  const FeatureCodes xc1 = quantize_features(x1, FeatureLayout::ChannelsFirst, qx);
  expect_close(conv_backward_weight(g, xc1, gc), reference::conv_backward_weight(g, xc1, gc), 1e-6, "overflow case");
  EXPECT_NEAR(conv_backward_weight(g, xc1, gc).item<double>(), -135200 * 0.5, 135200 * 0.5 * 1e-2);
  // Every code at its largest magnitude: uint8 255 times int8 -128 overflows int32 within one sample's 67600
  // positions, so no path may sum a whole sample at once.
  const FeatureCodes top = quantize_features(torch::ones({2, 1, 260, 260}), FeatureLayout::ChannelsFirst, qx);
  ASSERT_EQ(top.codes.max().item<int>(), 255);
  ASSERT_GT(int64_t{67600} * 255 * 128, int64_t{std::numeric_limits<int32_t>::max()});
  for (auto product : {WeightGradientProduct::Fastest, WeightGradientProduct::Patches}) {
    const at::Tensor worst = conv_backward_weight(g, top, gc, product);
    expect_close(worst, reference::conv_backward_weight(g, top, gc), 1e-6, "worst case");
    EXPECT_NEAR(worst.item<double>(), -135200.0, 135200 * 1e-2);
  }
  EXPECT_EQ(max_exact_terms(128, 128), 131071);
}

}  // namespace
}  // namespace fractrain::integer

// The vectorised corrections (16 x 16 tiles, or 8 x 8 on AVX2, transposed in registers) against the portable loop,
// bit for bit: whole tiles, remainders of channels and of positions, a single channel. All form the same residue
// modulo 2^32 and round it once to float (include/fractrain/integer/corrected_planes.h), so they must agree on any
// input, wrapping sums included; that the residue is the exact sum where the caller uses it is the passes' tests'
// concern (IntegerConv.*). The AVX-512 form on the hardware where the CPU has AVX-512 and on SIMDe's
// implementations of the intrinsics everywhere; the AVX2 form where the CPU has AVX2.
namespace fractrain {
namespace {

// `form` (the one corrected_planes picks on this CPU, or the AVX-512 form on SIMDe) against the portable loop. With
// `wrapping`, sums that pass 2^31 (the hardware wraps them, as the portable loop's uint32 does); SIMDe's portable
// multiply is a signed int32 product, whose overflow C++ leaves undefined, so its form gets sums that stay in range.
template <typename Form>
void expect_corrections_equal_the_portable_loop(Form form, const std::string& name, bool wrapping = true) {
  torch::manual_seed(12);
  const int64_t magnitude = wrapping ? 1 << 30 : 1 << 28;
  for (const auto& [P, C] : std::vector<std::pair<int64_t, int64_t>>{
           {1024, 16}, {49, 24}, {196, 64}, {7, 3}, {16, 1}, {100, 33}, {64, 32}}) {
    const at::Tensor acc = torch::randint(-magnitude, magnitude, {P, C}, torch::kInt);
    const at::Tensor box = torch::randint(0, 1 << 20, {P}, torch::kInt);
    const at::Tensor terms = torch::randint(-(magnitude >> 6), magnitude >> 6, {C, P}, torch::kInt);
    const at::Tensor offsets = torch::randint(-255, 256, {C}, torch::kInt);
    const at::Tensor scale = torch::rand({C}) * 1e-3 + 1e-5, bias = torch::randn({C});
    at::Tensor fast = torch::empty({C, P}), portable = torch::empty({C, P});
    for (int32_t on : {0, -77, 128}) {
      form(acc.data_ptr<int32_t>(), box.data_ptr<int32_t>(), terms.data_ptr<int32_t>(), on,
           offsets.data_ptr<int32_t>(), scale.data_ptr<float>(), bias.data_ptr<float>(), P, C, fast.data_ptr<float>());
      integer::corrected_planes_portable(acc.data_ptr<int32_t>(), box.data_ptr<int32_t>(),
                                         terms.data_ptr<int32_t>(), on, offsets.data_ptr<int32_t>(),
                                         scale.data_ptr<float>(), bias.data_ptr<float>(), P, C,
                                         portable.data_ptr<float>());
      EXPECT_TRUE(torch::equal(fast.view(torch::kInt), portable.view(torch::kInt)))
          << name << ", P " << P << " C " << C << " on " << on << ": max |difference| "
          << (fast - portable).abs().max().item<float>();
    }
  }
}

// Where the residue is the exact sum: every product of two codes (each at most 255) offset by at most the given
// offsets, times the number of terms, below 2^31.
TEST(IntegerCorrections, Int32FitFollowsTheWorstCase) {
  EXPECT_TRUE(integer::corrections_fit_int32(144, 0, 255));      // 144 * 255 * 510 = 18.7 million
  EXPECT_TRUE(integer::corrections_fit_int32(16512, 0, 255));    // 16512 * 255 * 510 = 2147.4 million < 2^31
  EXPECT_FALSE(integer::corrections_fit_int32(16513, 0, 255));   // one term more reaches it
  EXPECT_FALSE(integer::corrections_fit_int32(9, 1 << 24, 255));  // a range far from zero
  EXPECT_TRUE(integer::corrections_fit_int32(9, -(1 << 18), 0));  // 9 * (2^18 + 255) * 255 < 2^31
  EXPECT_TRUE(integer::corrections_fit_int32(0, 1 << 24, 1 << 24));
}

TEST(IntegerCorrections, VectorisedEqualsPortableBitForBit) {
  if (!cpu_has_avx512f()) GTEST_SKIP() << "this CPU has no AVX-512 (the SIMDe test below runs that form)";
  expect_corrections_equal_the_portable_loop(integer::corrected_planes, "AVX-512");
}

// The AVX2 form (8 x 8 tiles; the path on CPUs with AVX2 but not AVX-512), on every CPU with AVX2.
TEST(IntegerCorrections, Avx2FormEqualsPortableBitForBit) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2";
  expect_corrections_equal_the_portable_loop(integer::corrected_planes_avx2, "AVX2");
}

// The AVX-512 form's source on SIMDe's portable intrinsics: its 16 x 16 transposes, the halves' conversions and the
// stores, on every CPU.
TEST(IntegerCorrections, Avx512FormOnSimdeEqualsPortableBitForBit) {
  // An empty plane says whether this build has the form at all.
  if (!integer::corrected_planes_emulated(nullptr, nullptr, nullptr, 0, nullptr, nullptr, nullptr, 0, 0, nullptr))
    GTEST_SKIP() << "built without SIMDe's headers (scripts/setup.sh installs libsimde-dev)";
  expect_corrections_equal_the_portable_loop(integer::corrected_planes_emulated, "AVX-512 on SIMDe",
                                            /*wrapping=*/false);
}

}  // namespace
}  // namespace fractrain
