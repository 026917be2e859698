// The weight gradient's own integer kernel (include/fractrain/integer/direct_weight_gradient.h) against a plain
// loop over samples, positions and taps. Its sums are exact integers, so every form of it must agree with the loop
// to the bit: the portable form on any CPU, the AVX-512 VNNI form where the CPU has it, and the whole weight
// gradient on it against the float64 reference and the other products (docs/integer.md).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <random>
#include <string>
#include <vector>

#include "fractrain/integer/direct_weight_gradient.h"
#include "fractrain/integer/integer_conv.h"
#include "fractrain/integer/integer_support.h"
#include "fractrain/quant/fake_quantize.h"
#include "integer_test_support.h"

namespace fractrain::integer {
// Its own namespace: the unity build compiles this file with test_integer_conv.cpp, whose helpers share names.
namespace weight_kernel_test {
namespace {

using namespace test_support;  // integer_test_support.h

using Case = ConvCase;

// Beyond the layer tests' shapes: output channels a multiple of 16 (the vectorised packing of the gradient) and
// not (33: three chunks, the last one short), input channels past a tile (17), a 5x5 kernel (one tap at a time),
// a 1x1 layer with padding (more outputs than inputs), and flat views of 1x1 stride-1 layers with a short last row
// (600 positions: rows of 256) and as a linear layer over 3 tokens, and a one-column input at stride 2.
const std::vector<Case> kCases = {
    {3, 5, 7, 9, 9, 3, 1, 1},    {2, 4, 6, 9, 7, 3, 2, 1},   {3, 6, 5, 8, 8, 1, 1, 0},    {2, 8, 4, 10, 10, 1, 2, 0},
    {2, 3, 5, 7, 7, 3, 2, 0},    {4, 16, 16, 6, 6, 3, 1, 1}, {2, 17, 33, 11, 13, 3, 1, 1}, {2, 9, 32, 12, 12, 5, 1, 2},
    {2, 4, 16, 5, 5, 1, 1, 1},   {3, 20, 16, 1, 600, 1, 1, 0}, {2, 7, 16, 15, 15, 3, 2, 1}, {1, 32, 48, 4, 4, 3, 1, 1},
    {5, 12, 7, 3, 1, 1, 1, 0},   {2, 3, 5, 5, 1, 1, 2, 0},
};

std::string describe(const Case& c) {
  return std::to_string(c.batch) + " x " + std::to_string(c.in) + "->" + std::to_string(c.out) + " " +
         std::to_string(c.height) + "x" + std::to_string(c.width) + " k" + std::to_string(c.kernel) + " s" +
         std::to_string(c.stride) + " p" + std::to_string(c.padding);
}

// Codes of a layer: x uint8 [N][H*W][I] and the same as planes [N][I][H*W], dy int8 [N][P][O], every value of
// the range equally likely.
struct Codes {
  std::vector<uint8_t> x, x_planar;
  std::vector<int8_t> dy;
};

std::vector<uint8_t> planes_of(const ConvGeometry& g, const std::vector<uint8_t>& x) {
  const int64_t Q = g.height * g.width, I = g.in_channels;
  std::vector<uint8_t> planes(x.size());
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t q = 0; q < Q; ++q)
      for (int64_t i = 0; i < I; ++i)
        planes[static_cast<size_t>((n * I + i) * Q + q)] = x[static_cast<size_t>((n * Q + q) * I + i)];
  return planes;
}

Codes random_codes(const ConvGeometry& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  Codes c;
  c.x.resize(static_cast<size_t>(g.batch * g.height * g.width * g.in_channels));
  c.dy.resize(static_cast<size_t>(g.batch * g.out_height() * g.out_width() * g.out_channels));
  for (uint8_t& v : c.x) v = static_cast<uint8_t>(byte(rng));
  for (int8_t& v : c.dy) v = static_cast<int8_t>(byte(rng) - 128);
  c.x_planar = planes_of(g, c.x);
  return c;
}

// The specification: [O][taps][I] sums over `samples`, every output position and every tap inside the input.
std::vector<int64_t> plain_products(const ConvGeometry& g, const Codes& c, const std::vector<int64_t>& samples) {
  const int64_t I = g.in_channels, O = g.out_channels, k = g.kernel, taps = k * k, Ho = g.out_height(),
                Wo = g.out_width(), Q = g.height * g.width, P = Ho * Wo;
  std::vector<int64_t> out(static_cast<size_t>(O * taps * I), 0);
  for (int64_t n : samples)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow)
        for (int64_t kh = 0; kh < k; ++kh)
          for (int64_t kw = 0; kw < k; ++kw) {
            const int64_t ih = oh * g.stride - g.padding + kh, iw = ow * g.stride - g.padding + kw;
            if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
            const uint8_t* x = c.x.data() + (n * Q + ih * g.width + iw) * I;
            const int8_t* dy = c.dy.data() + (n * P + oh * Wo + ow) * O;
            for (int64_t o = 0; o < O; ++o)
              for (int64_t i = 0; i < I; ++i)
                out[static_cast<size_t>((o * taps + kh * k + kw) * I + i)] += int64_t{dy[o]} * int64_t{x[i]};
          }
  return out;
}

// From the channels-last codes, or from the planar copy.
enum class From { ChannelsLast, Planes };

std::vector<int64_t> kernel_products(const ConvGeometry& g, const Codes& c, const std::vector<int64_t>& samples,
                                     DotProductIsa isa, From from = From::ChannelsLast,
                                     int64_t max_terms = max_exact_terms(255, 128)) {
  std::vector<int64_t> out(static_cast<size_t>(g.out_channels * g.kernel * g.kernel * g.in_channels), 0);
  const uint8_t* planes = from == From::Planes ? c.x_planar.data() : nullptr;
  EXPECT_TRUE(direct_weight_products(g, c.x.data(), planes, c.dy.data(), samples, max_terms, isa, out.data()));
  return out;
}

// All samples, and every other one in reverse order (a DFQ group).
std::vector<std::vector<int64_t>> sample_sets(int64_t batch) {
  std::vector<int64_t> all, some;
  for (int64_t n = 0; n < batch; ++n) all.push_back(n);
  for (int64_t n = batch - 1; n >= 0; n -= 2) some.push_back(n);
  return {all, some};
}

TEST(IntegerWeightKernel, PortableFormEqualsThePlainSums) {
  for (const Case& c : kCases) {
    const ConvGeometry g = geometry(c);
    const Codes codes = random_codes(g, static_cast<uint32_t>(&c - kCases.data()));
    for (const std::vector<int64_t>& samples : sample_sets(c.batch)) {
      const std::vector<int64_t> expected = plain_products(g, codes, samples);
      for (From from : {From::ChannelsLast, From::Planes})
        EXPECT_EQ(kernel_products(g, codes, samples, DotProductIsa::Portable, from), expected)
            << describe(c) << ", " << samples.size() << " samples" << (from == From::Planes ? ", from planes" : "");
    }
  }
}

// The vector form against the portable one on every case, all samples and a reordered subset, from both input
// layouts. `seed` gives each form's test its own codes.
void expect_form_equals_the_portable_form(DotProductIsa isa, uint32_t seed) {
  for (const Case& c : kCases) {
    const ConvGeometry g = geometry(c);
    const Codes codes = random_codes(g, seed + static_cast<uint32_t>(&c - kCases.data()));
    for (const std::vector<int64_t>& samples : sample_sets(c.batch))
      for (From from : {From::ChannelsLast, From::Planes})
        EXPECT_EQ(kernel_products(g, codes, samples, isa, from),
                  kernel_products(g, codes, samples, DotProductIsa::Portable))
            << describe(c) << ", " << samples.size() << " samples" << (from == From::Planes ? ", from planes" : "");
  }
}

TEST(IntegerWeightKernel, Avx512VnniFormEqualsThePortableForm) {
  if (!cpu_has_avx512_vnni()) GTEST_SKIP() << "this CPU has no AVX-512 VNNI";
  EXPECT_TRUE(direct_kernel_usable()) << "the first-use check of the vector form failed";
  expect_form_equals_the_portable_form(DotProductIsa::Avx512Vnni, 100);
}

// The vector form's source on SIMDe's implementations of the intrinsics: on any CPU, its lane order (16 output
// channels), its byte order (4 positions per lane), the broadcast of 4 input bytes and the int64 widening of the
// two halves are held to the portable form. Hardware and SIMDe agree on the instructions' results (SIMDe's own
// tests); what this leaves to a VNNI CPU is the compiler's code for the target.
TEST(IntegerWeightKernel, Avx512VnniFormOnSimdeEqualsThePortableForm) {
  if (!emulated_vnni_built()) GTEST_SKIP() << "built without SIMDe's headers (scripts/setup.sh installs libsimde-dev)";
  expect_form_equals_the_portable_form(DotProductIsa::Avx512VnniEmulated, 200);
}

// Each int32 sum holds at most max_terms products: with every code at its largest magnitude (255 x -128) a
// 260-column row holds 260 terms per lane, so 65,793 terms (the bound) cut a sample of 260 rows after 253; a
// smaller bound cuts after every few rows. The result must be the exact int64 sum either way, and a bound below
// one row's terms must refuse instead of overflowing.
TEST(IntegerWeightKernel, SumsAreCutBeforeTheyCanOverflowInt32) {
  ConvGeometry g;
  g.batch = 2;
  g.in_channels = 1;
  g.out_channels = 1;
  g.height = g.width = 260;
  g.kernel = 3;
  g.padding = 1;
  Codes top;
  top.x.assign(static_cast<size_t>(2 * 260 * 260), 255);
  top.x_planar = top.x;  // one channel: the same bytes
  top.dy.assign(static_cast<size_t>(2 * 260 * 260), -128);
  ASSERT_GT(int64_t{260} * 260 * 255 * 128, int64_t{std::numeric_limits<int32_t>::max()});
  const std::vector<int64_t> both = {0, 1};
  const std::vector<int64_t> expected = plain_products(g, top, both);
  EXPECT_EQ(expected[4], -2 * 260 * 260 * int64_t{255 * 128});  // the centre tap reads every position
  std::vector<DotProductIsa> forms = {DotProductIsa::Portable};
  if (emulated_vnni_built()) forms.push_back(DotProductIsa::Avx512VnniEmulated);
  if (cpu_has_avx512_vnni()) forms.push_back(DotProductIsa::Avx512Vnni);
  for (DotProductIsa isa : forms) {
    EXPECT_EQ(kernel_products(g, top, both, isa), expected);
    EXPECT_EQ(kernel_products(g, top, both, isa, From::Planes), expected);
    EXPECT_EQ(kernel_products(g, top, both, isa, From::ChannelsLast, 3 * 260), expected);  // a flush every 3 rows
    std::vector<int64_t> untouched(9, 0);
    EXPECT_FALSE(direct_weight_products(g, top.x.data(), nullptr, top.dy.data(), both, 259, isa, untouched.data()));
    EXPECT_EQ(untouched, std::vector<int64_t>(9, 0));
  }
}

// The whole weight gradient on the own kernel: against the float64 reference and the simulated FP32 gradient on
// the same quantization (tolerances as in test_integer_conv.cpp), and equal to the bit to the patches' gradient (on
// oneDNN's products or the plain loops that stand in for them).
TEST(IntegerWeightKernel, WeightGradientOnItEqualsTheReference) {
  ASSUME_INTEGER_SUPPORT();  // the patches' products, on plain loops where oneDNN's would not be exact
  torch::manual_seed(11);
  const PhiloxStream noise{3, 7};
  for (const Case& c : kCases) {
    for (bool per_sample : {false, true}) {
      const ConvGeometry g = geometry(c);
      const at::Tensor x = torch::rand({c.batch, c.in, c.height, c.width}) - 0.2;
      const at::Tensor dy = torch::randn({c.batch, c.out, g.out_height(), g.out_width()});
      std::vector<int> xbits, gbits;
      for (int64_t n = 0; n < c.batch; ++n) {
        xbits.push_back(per_sample ? 2 + static_cast<int>(n % 7) : 8);
        gbits.push_back(per_sample ? 8 - static_cast<int>(n % 3) : 8);
      }
      FeatureQuantization qx;
      qx.sample_bits = xbits;
      qx.range = tensor_range(x);
      const FeatureCodes xc = quantize_features(x.contiguous(), FeatureLayout::ChannelsFirst, qx);
      qx.planar = true;  // as the layers ask for it where the vector form runs
      const FeatureCodes xc_planar = quantize_features(x.contiguous(), FeatureLayout::ChannelsFirst, qx);
      ASSERT_TRUE(at::equal(xc_planar.planar, xc_planar.codes.transpose(1, 2)));
      FeatureQuantization qg;
      qg.sample_bits = gbits;
      qg.range = tensor_range(dy);
      qg.noise = &noise;
      qg.signed_codes = true;
      const FeatureCodes gc = quantize_features(dy.contiguous(), FeatureLayout::ChannelsFirst, qg);
      const std::string what = describe(c) + (per_sample ? " per sample" : "");

      const at::Tensor dw = conv_backward_weight(g, xc, gc, WeightGradientProduct::Direct);
      EXPECT_TRUE(at::equal(dw, conv_backward_weight(g, xc_planar, gc, WeightGradientProduct::Direct))) << what;
      expect_close(dw, reference::conv_backward_weight(g, xc, gc), 1e-6, what);

      const at::Tensor xq = fake_quantize_rows(x, xbits, qx.range, snapped());
      const at::Tensor gq = fake_quantize_rows(dy, gbits, qg.range, snapped(Rounding::Stochastic, noise));
      const auto simulated =
          at::convolution_backward(gq, xq, torch::zeros({c.out, c.in, c.kernel, c.kernel}), at::nullopt,
                                   {c.stride, c.stride}, {c.padding, c.padding}, {1, 1}, false, {0, 0}, 1,
                                   {false, true, false});
      expect_close(dw, std::get<1>(simulated), 1e-4, what + " vs simulated");
      EXPECT_TRUE(at::equal(dw, conv_backward_weight(g, xc, gc, WeightGradientProduct::Patches))) << what;
    }
  }
}

}  // namespace
}  // namespace weight_kernel_test
}  // namespace fractrain::integer
