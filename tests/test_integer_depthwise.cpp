// The integer passes of depthwise convolutions (src/integer/integer_depthwise.h, reached through conv_forward,
// conv_backward_data and conv_backward_weight with groups = channels) against their float64 specification and
// against the simulated FP32 passes on the same quantization. They are plain loops of fractrain's own, so they
// run on every CPU. Tolerances as in test_integer_conv.cpp: 1e-6 of the largest magnitude against the reference
// (exact integer sums, rounded twice at the end), 1e-4 against FP32 (which rounds its partial sums).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <string>
#include <vector>

#include "fractrain/integer/integer_conv.h"
#include "fractrain/quant/fake_quantize.h"
#include "fractrain/util/error.h"
#include "integer_test_support.h"

namespace fractrain::integer {
// Its own namespace: the unity build compiles this file with the other integer tests, whose helpers share names.
namespace depthwise_test {
namespace {

using namespace test_support;  // integer_test_support.h

struct Case {
  int64_t batch, channels, height, width, kernel, stride, padding;
};

// Odd sizes, stride 2 with and without padding, a 5x5 filter, two channels, a non-square input without padding.
// (One channel is a dense convolution, groups = 1; a 1x1 filter is one value per channel, a range of width 0 that
// has no integer zero point, and the layer runs such a layer simulated.)
const std::vector<Case> kCases = {
    {3, 5, 9, 9, 3, 1, 1}, {2, 4, 9, 7, 3, 2, 1}, {2, 3, 7, 7, 3, 2, 0},
    {2, 6, 8, 8, 5, 1, 2}, {2, 2, 6, 6, 3, 1, 1}, {3, 7, 4, 9, 3, 1, 0},
};

ConvGeometry geometry(const Case& c) {
  ConvGeometry g = test_support::geometry(
      ConvCase{c.batch, c.channels, c.channels, c.height, c.width, c.kernel, c.stride, c.padding});
  g.groups = c.channels;
  return g;
}

TEST(IntegerDepthwise, EachPassEqualsReferenceAndSimulated) {
  torch::manual_seed(13);
  const PhiloxStream noise{4, 2};
  for (const Case& c : kCases) {
    for (bool per_sample : {false, true}) {
      for (int bits : {2, 5, 8}) {
        const ConvGeometry g = geometry(c);
        const std::string what = "case " + std::to_string(&c - kCases.data()) + " bits " + std::to_string(bits) +
                                 (per_sample ? " per sample" : "");
        const at::Tensor x = torch::rand({c.batch, c.channels, c.height, c.width}) - 0.3;
        const at::Tensor w = torch::randn({c.channels, 1, c.kernel, c.kernel});
        const at::Tensor bias = torch::randn({c.channels});
        const at::Tensor dy = torch::randn({c.batch, c.channels, g.out_height(), g.out_width()});
        const std::vector<int> xbits = widths(c.batch, bits, per_sample),
                               gbits = widths(c.batch, std::min(bits + 2, 8), per_sample);
        FeatureQuantization qx;
        qx.sample_bits = std::vector<int>(xbits);  // (a copy assignment trips GCC 12's -Wnonnull)
        qx.range = tensor_range(x);
        qx.planar = per_sample;  // both ways in: the quantizer's planar copy, or transposed by the pass
        const FeatureCodes xc = quantize_features(x.contiguous(), FeatureLayout::ChannelsFirst, qx);
        FeatureQuantization qg;
        qg.sample_bits = std::vector<int>(gbits);
        qg.range = tensor_range(dy);
        qg.noise = &noise;
        qg.signed_codes = true;
        const FeatureCodes gc = quantize_features(dy.contiguous(), FeatureLayout::ChannelsFirst, qg);
        const WeightCodes wc = quantize_weight(w, bits, 0);

        const at::Tensor xq = fake_quantize_rows(x, xbits, qx.range, snapped());
        const at::Tensor gq = fake_quantize_rows(dy, gbits, qg.range, snapped(Rounding::Stochastic, noise));
        const at::Tensor wq = dequantize_weight(wc);
        const std::array<int64_t, 2> stride{c.stride, c.stride}, padding{c.padding, c.padding};

        const std::vector<int64_t> y_sizes{c.batch, c.channels, g.out_height(), g.out_width()};
        const at::Tensor y = conv_forward(g, xc, wc, bias, FeatureLayout::ChannelsFirst).view(y_sizes);
        expect_close(y, reference::conv_forward(g, xc, wc, bias, FeatureLayout::ChannelsFirst).view(y.sizes()), 1e-6,
                     what + " forward");
        expect_close(y, at::conv2d(xq, wq, bias, stride, padding, 1, c.channels), 1e-4, what + " forward vs simulated");

        const at::Tensor dx = conv_backward_data(g, gc, wc, FeatureLayout::ChannelsFirst).view(x.sizes());
        expect_close(dx, reference::conv_backward_data(g, gc, wc, FeatureLayout::ChannelsFirst).view(x.sizes()),
                     1e-6, what + " error backward");
        const at::Tensor dw = conv_backward_weight(g, xc, gc);
        expect_close(dw, reference::conv_backward_weight(g, xc, gc), 1e-6, what + " weight gradient");
        const auto simulated = at::convolution_backward(gq, xq, wq, at::nullopt, stride, padding, {1, 1}, false,
                                                        {0, 0}, c.channels, {true, true, false});
        expect_close(dx, std::get<0>(simulated), 1e-4, what + " error backward vs simulated");
        expect_close(dw, std::get<1>(simulated), 1e-4, what + " weight gradient vs simulated");
      }
    }
  }
}

// Channels last in and out (the layout linear layers use) gives the same values transposed.
TEST(IntegerDepthwise, ChannelsLastResultsAreTheChannelsFirstOnesTransposed) {
  torch::manual_seed(14);
  const ConvGeometry g = geometry({2, 5, 6, 6, 3, 1, 1});
  const at::Tensor x = torch::rand({2, 5, 6, 6});
  FeatureQuantization q;
  q.sample_bits = {8, 4};
  q.range = tensor_range(x);
  const FeatureCodes xc = quantize_features(x, FeatureLayout::ChannelsFirst, q);
  const WeightCodes wc = quantize_weight(torch::randn({5, 1, 3, 3}), 6, 0);
  const at::Tensor first = conv_forward(g, xc, wc, at::Tensor(), FeatureLayout::ChannelsFirst);
  const at::Tensor last = conv_forward(g, xc, wc, at::Tensor(), FeatureLayout::ChannelsLast);
  EXPECT_TRUE(at::equal(last, first.transpose(1, 2).contiguous()));
}

// Any other grouping, and weights of the wrong shape, are refused with the numbers that do not fit.
TEST(IntegerDepthwise, OtherGroupingsAndMisshapenWeightsAreRefused) {
  ConvGeometry g = geometry({2, 4, 5, 5, 3, 1, 1});
  const at::Tensor x = torch::rand({2, 4, 5, 5});
  FeatureQuantization q;
  q.sample_bits = {8, 8};
  q.range = tensor_range(x);
  const FeatureCodes xc = quantize_features(x, FeatureLayout::ChannelsFirst, q);
  try {
    conv_forward(g, xc, quantize_weight(torch::randn({4, 2, 3, 3}), 8, 0), at::Tensor(), FeatureLayout::ChannelsFirst);
    FAIL() << "a dense weight for a depthwise layer was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[4, 2, 3, 3]"), std::string::npos) << e.what();
  }
  g.groups = 2;
  try {
    conv_forward(g, xc, quantize_weight(torch::randn({4, 2, 3, 3}), 8, 0), at::Tensor(), FeatureLayout::ChannelsFirst);
    FAIL() << "2 groups of 4 channels were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2 groups"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace depthwise_test
}  // namespace fractrain::integer
