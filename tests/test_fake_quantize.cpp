// The quantizer against the DESIGN.md 4.1 formula: fused kernel == tensor-op reference bit for bit, values on
// the grid, stochastic rounding unbiased, per-channel weight ranges, per-row bit widths.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "fractrain/quant/fake_quantize.h"
#include "fractrain/quant/quant_math.h"
#include "fractrain/quant/quantize_kernel.h"
#include "fractrain/quant/simd_quotient.h"
#include "fractrain/random/philox.h"
#include "fractrain/util/error.h"

using namespace fractrain;

namespace {

// The formula for one element, written as plainly as possible (double-free, float throughout).
float formula(float x, int bits, float lo, float hi, float u) {
  const float levels = static_cast<float>((uint64_t{1} << bits) - 1);
  const float s = std::max((hi - lo) / levels, 1e-8f);
  float t = (x - lo) / s + u;
  t = std::min(std::max(t, 0.0f), levels);
  return std::nearbyint(t) * s + lo;
}

std::vector<std::vector<int64_t>> odd_shapes() {
  return {{1}, {7}, {3, 5}, {2, 3, 7, 5}, {13, 1, 1, 1}, {4, 33, 17}, {1, 70001}};
}

}  // namespace

TEST(FakeQuantize, FusedEqualsReferenceDeterministic) {
  torch::manual_seed(0);
  for (const auto& shape : odd_shapes()) {
    for (int bits : {1, 2, 3, 4, 6, 8, 12, 16, 24, 32}) {
      at::Tensor x = torch::randn(shape) * 3 + 0.5;
      const QuantRange r = tensor_range(x);
      for (bool snap : {false, true}) {
        QuantizeOptions o;
        o.snap_zero_point = snap;
        at::Tensor fused = fake_quantize(x, bits, r, o);
        at::Tensor ref = reference::fake_quantize(x, bits, r, o);
        ASSERT_TRUE(torch::equal(fused, ref)) << "bits " << bits << " shape numel " << x.numel() << " snap " << snap;
      }
    }
  }
}

// The noise's AVX2 form (CPUs with AVX2 but not AVX-512) against the stream itself, element by element, on every CPU
// with AVX2, whichever form stochastic rounding picks there.
TEST(FakeQuantize, NoiseTilesOnAvx2EqualTheStream) {
  float tile[64];
  if (!kernel::philox_tile_uniform_avx2_for_tests(PhiloxStream{1, 2}, 0, tile)) GTEST_SKIP() << "no AVX2";
  for (const PhiloxStream stream : {PhiloxStream{42, 7}, PhiloxStream{0, 0}, PhiloxStream{~0ull, 1ull << 40}})
    for (uint64_t index : {uint64_t{0}, uint64_t{1}, uint64_t{1} << 26, (uint64_t{1} << 32) - 1, uint64_t{3} << 33}) {
      ASSERT_TRUE(kernel::philox_tile_uniform_avx2_for_tests(stream, index, tile));
      for (int i = 0; i < 64; ++i)
        ASSERT_EQ(tile[i], stream.uniform(index * 64 + static_cast<uint64_t>(i)) - 0.5f)
            << "tile " << index << " element " << i;
    }
}

TEST(FakeQuantize, FusedEqualsReferenceStochastic) {
  torch::manual_seed(1);
  for (const auto& shape : odd_shapes()) {
    at::Tensor x = torch::randn(shape);
    QuantizeOptions o;
    o.rounding = Rounding::Stochastic;
    o.noise = PhiloxStream{42, 7};
    for (int bits : {2, 6, 8}) {
      at::Tensor fused = fake_quantize(x, bits, tensor_range(x), o);
      at::Tensor ref = reference::fake_quantize(x, bits, tensor_range(x), o);
      ASSERT_TRUE(torch::equal(fused, ref)) << "bits " << bits;
    }
  }
}

TEST(FakeQuantize, MatchesScalarFormulaElementwise) {
  torch::manual_seed(2);
  at::Tensor x = torch::randn({1000}) * 5;
  const QuantRange r = tensor_range(x);
  for (int bits : {1, 3, 8}) {
    at::Tensor q = fake_quantize(x, bits, r);
    for (int64_t i = 0; i < x.numel(); ++i)
      ASSERT_EQ(q[i].item<float>(), formula(x[i].item<float>(), bits, r.lo, r.hi, 0.0f)) << i;
  }
}

TEST(FakeQuantize, VectorSpansEqualTheScalarFormulaAtRoundingTies) {
  // On AVX-512 the spans form (x - lo) / s without a division (simd_quotient.h); a quotient one ulp off would move
  // an element lying on a rounding tie (or an ulp from one) to the other code. Every tie of widths 1..8 and its
  // neighbours, over ranges of several magnitudes, values and codes, nearest and stochastic, against the formula.
  // The last two: a step so wide that its reciprocal is subnormal at 1 and 2 bits (the spans then divide), and one
  // so narrow (the 1e-8 floor) that the quotient of a large value overflows (to the top code, as the division's inf).
  for (const QuantRange r : {QuantRange{-1.0f, 1.0f}, QuantRange{-0.37f, 5.3f}, QuantRange{1e-3f, 2.7e-3f},
                             QuantRange{-300.0f, 41.0f}, QuantRange{-1e38f, 1e38f}, QuantRange{0.0f, 1e-12f}}) {
    for (int bits = 1; bits <= 8; ++bits) {
      const float levels = static_cast<float>((1 << bits) - 1);
      const float s = std::max((r.hi - r.lo) / levels, 1e-8f);
      std::vector<float> xs = {r.lo, r.hi, r.lo - 1.0f, r.hi + 1.0f, 1e31f, -1e31f, 3e38f, -3e38f};
      for (int t = -1; t <= (1 << bits); ++t) {
        const float tie = r.lo + (static_cast<float>(t) + 0.5f) * s;
        float below = tie, above = tie;
        xs.push_back(tie);
        for (int k = 0; k < 3; ++k) {
          below = std::nextafter(below, -INFINITY);
          above = std::nextafter(above, INFINITY);
          xs.push_back(below);
          xs.push_back(above);
        }
      }
      const int64_t n = static_cast<int64_t>(xs.size());  // not a multiple of 16: the tail runs too
      const at::Tensor x = torch::tensor(xs);
      const at::Tensor q = fake_quantize(x, bits, r);
      const kernel::RowQuantParams params{r.lo, s, levels};
      std::vector<uint8_t> codes(static_cast<size_t>(n)), noisy(static_cast<size_t>(n));
      const PhiloxStream noise{5, static_cast<uint64_t>(bits)};
      kernel::quantize_span_to_codes(xs.data(), n, params, nullptr, 0, 0, codes.data());
      kernel::quantize_span_to_codes(xs.data(), n, params, &noise, 7, 0, noisy.data());
      for (int64_t i = 0; i < n; ++i) {
        const float expected = formula(xs[i], bits, r.lo, r.hi, 0.0f);
        ASSERT_EQ(q[i].item<float>(), expected) << bits << " bits, x = " << xs[i];
        ASSERT_EQ(static_cast<float>(codes[i]) * s + r.lo, expected) << bits << " bits, code of x = " << xs[i];
        const float u = quant_math::centered_uniform(noise.word(7 + static_cast<uint64_t>(i)));
        ASSERT_EQ(static_cast<float>(noisy[i]) * s + r.lo, formula(xs[i], bits, r.lo, r.hi, u))
            << bits << " bits, stochastic code of x = " << xs[i];
      }
    }
  }
}

TEST(FakeQuantize, VectorQuotientOnlyWhereItsReciprocalIsNormal) {
  EXPECT_TRUE(simd::usable(1e-8f));  // the quantizer's floor
  EXPECT_TRUE(simd::usable(1.0f));
  EXPECT_TRUE(simd::usable(1e37f));
  EXPECT_FALSE(simd::usable(2e38f));  // 1 / s subnormal: the spans divide
  EXPECT_FALSE(simd::usable(INFINITY));
  EXPECT_FALSE(simd::usable(NAN));
  EXPECT_FALSE(simd::usable(0.0f));
}

TEST(FakeQuantize, ValuesLieOnTheGridWithRightLevelCount) {
  torch::manual_seed(3);
  at::Tensor x = torch::randn({5000});
  const QuantRange r = tensor_range(x);
  for (int bits : {1, 2, 3, 4}) {
    for (Rounding rounding : {Rounding::Nearest, Rounding::Stochastic}) {
      QuantizeOptions o;
      o.rounding = rounding;
      o.noise = PhiloxStream{9, static_cast<uint64_t>(bits)};
      at::Tensor q = fake_quantize(x, bits, r, o);
      const float s = (r.hi - r.lo) / static_cast<float>((1 << bits) - 1);
      at::Tensor t = (q - r.lo) / s;
      EXPECT_LT((t - t.round()).abs().max().item<float>(), 1e-3);
      EXPECT_GE(t.min().item<float>(), -1e-3);
      EXPECT_LE(t.max().item<float>(), (1 << bits) - 1 + 1e-3);
      EXPECT_LE(std::get<0>(at::_unique(q)).numel(), 1 << bits);
    }
  }
}

TEST(FakeQuantize, RoundsHalfToEven) {
  // Range [0, 3] at 2 bits: s = 1, so t = x exactly; 0.5 -> 0, 1.5 -> 2, 2.5 -> 2.
  at::Tensor x = torch::tensor({0.5f, 1.5f, 2.5f, 0.0f, 3.0f});
  at::Tensor q = fake_quantize(x, 2, QuantRange{0.0f, 3.0f});
  EXPECT_TRUE(torch::equal(q, torch::tensor({0.0f, 2.0f, 2.0f, 0.0f, 3.0f})));
}

TEST(FakeQuantize, ClampsOutsideTheRange) {
  at::Tensor x = torch::tensor({-5.0f, 0.2f, 9.0f});
  at::Tensor q = fake_quantize(x, 4, QuantRange{0.0f, 1.5f});
  EXPECT_FLOAT_EQ(q[0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(q[2].item<float>(), 1.5f);
}

TEST(FakeQuantize, ZeroBitsIsIdentityAndConstantTensorIsSafe) {
  at::Tensor x = torch::randn({10});
  EXPECT_TRUE(torch::equal(fake_quantize(x, 0, tensor_range(x)), x));
  at::Tensor c = torch::full({10}, 0.25f);
  at::Tensor q = fake_quantize(c, 8, tensor_range(c));  // hi == lo: s = 1e-8, no division by zero
  EXPECT_TRUE(torch::equal(q, c));
}

TEST(FakeQuantize, StochasticRoundingIsUnbiased) {
  // The mean of many independent roundings converges to the input (QPyTorch-style property test).
  at::Tensor x = torch::linspace(-1.0, 1.0, 257);
  const QuantRange r{-1.0f, 1.0f};
  const int trials = 4000;
  at::Tensor sum = torch::zeros_like(x);
  for (int k = 0; k < trials; ++k) {
    QuantizeOptions o;
    o.rounding = Rounding::Stochastic;
    o.noise = PhiloxStream{123, static_cast<uint64_t>(k)};
    sum += fake_quantize(x, 2, r, o);
  }
  at::Tensor mean = sum / trials;
  // One 2-bit step is 2/3; the standard error of the mean is below step/2/sqrt(trials) ~ 0.0053.
  EXPECT_LT((mean - x).abs().max().item<float>(), 0.025);
  EXPECT_LT((mean - x).mean().abs().item<float>(), 0.002);
  // Nearest rounding, by contrast, is biased for values between grid points.
  EXPECT_GT((fake_quantize(x, 2, r) - x).abs().max().item<float>(), 0.3);
}

TEST(FakeQuantize, StochasticRoundingIsReproducibleAndThreadIndependent) {
  at::Tensor x = torch::randn({3, 100003});
  QuantizeOptions o;
  o.rounding = Rounding::Stochastic;
  o.noise = PhiloxStream{5, 6};
  at::set_num_threads(1);
  at::Tensor one = fake_quantize(x, 6, tensor_range(x), o);
  at::set_num_threads(2);
  at::Tensor two = fake_quantize(x, 6, tensor_range(x), o);
  EXPECT_TRUE(torch::equal(one, two));
  o.noise.stream = 7;
  EXPECT_FALSE(torch::equal(one, fake_quantize(x, 6, tensor_range(x), o)));
}

TEST(FakeQuantize, PerChannelRangesAreIndependent) {
  torch::manual_seed(4);
  at::Tensor w = torch::randn({5, 3, 3, 3});
  w[2] *= 100;  // one channel with a much larger range must not coarsen the others
  at::Tensor q = fake_quantize_per_channel(w, 4);
  EXPECT_TRUE(torch::equal(q, reference::fake_quantize_per_channel(w, 4)));
  for (int64_t c = 0; c < 5; ++c) {
    at::Tensor wc = w[c];
    at::Tensor expected = fake_quantize(wc, 4, tensor_range(wc));
    EXPECT_TRUE(torch::equal(q[c], expected)) << "channel " << c;
    EXPECT_FLOAT_EQ(q[c].min().item<float>(), wc.min().item<float>());
    EXPECT_FLOAT_EQ(q[c].max().item<float>(), wc.max().item<float>());
  }
}

namespace {

// Conv weights [O, I, kh, kw] (one with an input channel of a much larger range), a depthwise one, linear
// weights [O, I], and shapes with a dimension of 1.
std::vector<at::Tensor> weights_by_input_channel() {
  std::vector<at::Tensor> ws;
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {6, 5, 3, 3}, {4, 7, 1, 1}, {3, 1, 3, 3}, {7, 9}, {1, 5}, {5, 1}, {2, 3, 4}, {33, 65}}) {
    ws.push_back(torch::randn(shape) * 2 - 0.3);
  }
  at::Tensor wide = torch::randn({6, 5, 3, 3});
  wide.select(1, 3) *= 100;
  ws.push_back(wide);
  return ws;
}

}  // namespace

TEST(FakeQuantize, PerInputChannelFusedEqualsReference) {
  torch::manual_seed(21);
  for (const at::Tensor& w : weights_by_input_channel()) {
    for (int bits : {2, 3, 4, 5, 6, 7, 8, 16}) {
      for (bool snap : {false, true}) {
        QuantizeOptions o;
        o.snap_zero_point = snap;
        ASSERT_TRUE(torch::equal(fake_quantize_per_input_channel(w, bits, o),
                                 reference::fake_quantize_per_input_channel(w, bits, o)))
            << "bits " << bits << " shape " << w.sizes() << " snap " << snap;
      }
    }
    QuantizeOptions stochastic;
    stochastic.rounding = Rounding::Stochastic;
    stochastic.noise = PhiloxStream{5, 9};
    EXPECT_TRUE(torch::equal(fake_quantize_per_input_channel(w, 4, stochastic),
                             reference::fake_quantize_per_input_channel(w, 4, stochastic)))
        << "stochastic, shape " << w.sizes();
  }
}

TEST(FakeQuantize, PerInputChannelValuesLieOnTheirOwnChannelsGrid) {
  torch::manual_seed(22);
  for (const at::Tensor& w : weights_by_input_channel()) {
    for (bool snap : {false, true}) {
      QuantizeOptions o;
      o.snap_zero_point = snap;
      const at::Tensor q = fake_quantize_per_input_channel(w, 3, o);
      ASSERT_EQ(q.sizes(), w.sizes());
      for (int64_t i = 0; i < w.size(1); ++i) {
        // Input channel i alone, quantized over its own min/max: the same values, so on its own grid.
        const at::Tensor wi = w.select(1, i).contiguous();
        const QuantRange r = tensor_range(wi);
        EXPECT_TRUE(torch::equal(q.select(1, i), fake_quantize(wi, 3, r, o)))
            << "input channel " << i << " shape " << w.sizes() << " snap " << snap;
        // At most 2^3 levels, every value an integer number of steps from the channel's zero point.
        const float s = std::max((r.hi - r.lo) / 7.0f, 1e-8f);
        const float lo = snap ? std::nearbyint(r.lo / s) * s : r.lo;
        const at::Tensor steps = (q.select(1, i) - lo) / s;
        EXPECT_TRUE(torch::allclose(steps, steps.round(), 0, 1e-3)) << "input channel " << i;
        EXPECT_LE(std::get<0>(at::_unique(q.select(1, i))).numel(), 8);
        if (!snap) {  // the range's ends are levels (the top one up to rounding in 7 * s + lo)
          EXPECT_EQ(q.select(1, i).min().item<float>(), r.lo);
          EXPECT_NEAR(q.select(1, i).max().item<float>(), r.hi, 1e-6f * (std::abs(r.lo) + std::abs(r.hi)));
        }
      }
    }
  }
  // The ranges really are per input channel: the channel of range ~100 leaves the others' steps fine.
  at::Tensor w = weights_by_input_channel().back();
  EXPECT_FALSE(torch::equal(fake_quantize_per_input_channel(w, 4), fake_quantize_per_channel(w, 4)));
  EXPECT_LT((fake_quantize_per_input_channel(w, 4).select(1, 0) - w.select(1, 0)).abs().max().item<float>(), 1.0f);
}

TEST(FakeQuantize, PerInputChannelEdgeCases) {
  at::Tensor w = torch::randn({4, 3, 2, 2});
  EXPECT_TRUE(fake_quantize_per_input_channel(w, 0).is_same(w));
  // A non-contiguous weight (a transposed view) is read through its strides.
  at::Tensor t = torch::randn({5, 6}).t();
  EXPECT_TRUE(torch::equal(fake_quantize_per_input_channel(t, 4), fake_quantize_per_input_channel(t.contiguous(), 4)));
  // A constant input channel (zero range) stays as it is.
  at::Tensor c = torch::randn({3, 2});
  c.select(1, 1).fill_(0.25f);
  EXPECT_TRUE(torch::equal(fake_quantize_per_input_channel(c, 4).select(1, 1), c.select(1, 1)));
  EXPECT_TRUE(torch::equal(fake_quantize_per_input_channel(c, 4), reference::fake_quantize_per_input_channel(c, 4)));
  // Non-float tensors take the reference.
  at::Tensor d = torch::randn({4, 3}, torch::kDouble);
  EXPECT_TRUE(torch::equal(fake_quantize_per_input_channel(d, 5), reference::fake_quantize_per_input_channel(d, 5)));
  EXPECT_THROW(fake_quantize_per_input_channel(torch::randn({5}), 4), Error);
}

TEST(FakeQuantize, PerRowBitsEqualQuantizingEachRowAlone) {
  torch::manual_seed(5);
  at::Tensor x = torch::randn({6, 4, 5});
  const std::vector<int> bits{2, 0, 4, 8, 3, 0};
  const QuantRange r = tensor_range(x);  // one range for the whole tensor
  QuantizeOptions o;
  at::Tensor q = fake_quantize_rows(x, bits, r, o);
  EXPECT_TRUE(torch::equal(q, reference::fake_quantize_rows(x, bits, r, o)));
  for (int64_t i = 0; i < 6; ++i) {
    at::Tensor alone = bits[i] == 0 ? x[i] : fake_quantize(x[i].contiguous(), bits[i], r);
    EXPECT_TRUE(torch::equal(q[i], alone)) << "row " << i;
  }
  o.rounding = Rounding::Stochastic;
  o.noise = PhiloxStream{1, 2};
  EXPECT_TRUE(torch::equal(fake_quantize_rows(x, bits, r, o), reference::fake_quantize_rows(x, bits, r, o)));
}

TEST(FakeQuantize, NonContiguousInputIsHandled) {
  at::Tensor x = torch::randn({8, 6}).t();
  const QuantRange r = tensor_range(x);
  EXPECT_TRUE(torch::equal(fake_quantize(x, 5, r), reference::fake_quantize(x.contiguous(), 5, r)));
}

// tensor_range's own kernel (kernel::min_max) against at::aminmax: sizes around its 16 lanes and its parallel
// chunks (2^15 elements), 1 and 2 threads, the extremes in the tail, and NaN anywhere making both NaN.
TEST(TensorRange, EqualsAminmaxAtAnySizeAndThreadCount) {
  const int threads = at::get_num_threads();
  torch::manual_seed(12);
  for (int t : {1, 2}) {
    at::set_num_threads(t);
    for (int64_t n : {1, 15, 16, 17, 1000, 32768, 100003, 400000}) {
      at::Tensor x = torch::randn({n});
      if (n > 2) {
        x[n - 1] = 9.5f;  // the maximum in the tail after the last full group of 16
        x[n - 2] = -9.5f;
      }
      auto [lo, hi] = at::aminmax(x);
      const QuantRange r = tensor_range(x);
      EXPECT_EQ(r.lo, lo.item<float>()) << n << " elements, " << t << " threads";
      EXPECT_EQ(r.hi, hi.item<float>()) << n << " elements, " << t << " threads";
      const kernel::MinMax serial = kernel::serial_min_max(x.data_ptr<float>(), n);  // quantize_weight's
      EXPECT_EQ(serial.lo, lo.item<float>()) << n << " elements, serial";
      EXPECT_EQ(serial.hi, hi.item<float>()) << n << " elements, serial";
      x[n / 2] = std::nanf("");
      const QuantRange with_nan = tensor_range(x);
      EXPECT_TRUE(std::isnan(with_nan.lo) && std::isnan(with_nan.hi)) << n << " elements with a NaN";
      const kernel::MinMax serial_nan = kernel::serial_min_max(x.data_ptr<float>(), n);
      EXPECT_TRUE(std::isnan(serial_nan.lo) && std::isnan(serial_nan.hi)) << n << " elements with a NaN, serial";
    }
  }
  // Non-contiguous and non-float tensors take at::aminmax.
  const at::Tensor strided = torch::randn({6, 8}).t();
  EXPECT_EQ(tensor_range(strided).hi, strided.max().item<float>());
  EXPECT_EQ(tensor_range(torch::arange(5, torch::kDouble)).hi, 4.0f);
  at::set_num_threads(threads);
}

TEST(Philox, MatchesTheRandom123KnownAnswers) {
  // Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
  Philox4x32 zero = philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  Philox4x32 ones = philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
}

TEST(Philox, KernelNoiseEqualsScalarStreamAtEveryOffset) {
  // The vectorised tile generator must reproduce PhiloxStream::uniform for spans starting anywhere.
  const PhiloxStream stream{0x1234567890abcdefull, 99};
  for (int64_t n : {1, 63, 64, 65, 200}) {
    at::Tensor x = torch::zeros({n});
    QuantizeOptions o;
    o.rounding = Rounding::Stochastic;
    o.noise = stream;
    at::Tensor noise = reference::rounding_noise(x, stream);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(noise[i].item<float>(), stream.uniform(i) - 0.5f);
    // x = 0 over range [-0.5, 0.5) at 1 level step: t = 0.5 + u, rounds to 1 exactly when u >= 0 (half-even
    // at exactly 0.5 rounds to 0, u = 0 happens with probability 2^-24 and the test seed avoids it).
    at::Tensor q = fake_quantize(x, 1, QuantRange{-0.5f, 0.5f}, o);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(q[i].item<float>() > 0, stream.uniform(i) - 0.5f > 0) << i;
  }
}

namespace {

QuantizeOptions stochastic_options(uint64_t key, uint64_t stream) {
  QuantizeOptions o;
  o.rounding = Rounding::Stochastic;
  o.noise = PhiloxStream{key, stream};
  return o;
}

}  // namespace

TEST(FakeQuantizeOut, IntoBufferInPlaceAndStridedEqualReference) {
  torch::manual_seed(6);
  for (const auto& shape : odd_shapes()) {
    for (Rounding rounding : {Rounding::Nearest, Rounding::Stochastic}) {
      at::Tensor x = torch::randn(shape) * 2 - 0.3;
      QuantizeOptions o = stochastic_options(8, 9);
      o.rounding = rounding;
      for (int bits : {1, 4, 8}) {
        const QuantRange r = tensor_range(x);
        const at::Tensor ref = reference::fake_quantize(x, bits, r, o);
        at::Tensor buffer = torch::full(shape, 7.0f);
        EXPECT_TRUE(torch::equal(fake_quantize_out(x, bits, r, o, buffer), ref)) << "bits " << bits;
        EXPECT_TRUE(torch::equal(buffer, ref));
        at::Tensor in_place = x.clone();
        fake_quantize_out(in_place, bits, r, o, in_place);
        EXPECT_TRUE(torch::equal(in_place, ref)) << "in place, bits " << bits;
        // A non-contiguous destination (the kernel writes contiguous memory) and a non-contiguous source.
        at::Tensor strided = torch::zeros({x.numel(), 2}).select(1, 1).view(shape);
        if (x.numel() > 1) {
          ASSERT_FALSE(strided.is_contiguous());
        }
        fake_quantize_out(x, bits, r, o, strided);
        EXPECT_TRUE(torch::equal(strided, ref)) << "strided out, bits " << bits;
        at::Tensor x_strided = torch::zeros({x.numel(), 2}).select(1, 0).view(shape).copy_(x);
        at::Tensor from_strided = torch::empty(shape);
        EXPECT_TRUE(torch::equal(fake_quantize_out(x_strided, bits, r, o, from_strided), ref));
      }
    }
  }
}

TEST(FakeQuantizeOut, RowsIntoBufferAndInPlaceEqualReference) {
  torch::manual_seed(7);
  at::Tensor x = torch::randn({6, 3, 5, 7});
  const std::vector<int> bits{2, 0, 4, 8, 3, 0};
  const QuantRange r = tensor_range(x);
  for (Rounding rounding : {Rounding::Nearest, Rounding::Stochastic}) {
    QuantizeOptions o = stochastic_options(2, 3);
    o.rounding = rounding;
    const at::Tensor ref = reference::fake_quantize_rows(x, bits, r, o);
    at::Tensor buffer = torch::empty_like(x);
    EXPECT_TRUE(torch::equal(fake_quantize_rows_out(x, bits, r, o, buffer), ref));
    at::Tensor in_place = x.clone();
    fake_quantize_rows_out(in_place, bits, r, o, in_place);
    EXPECT_TRUE(torch::equal(in_place, ref));
  }
}

TEST(FakeQuantizeOut, OtherDtypesGoThroughTheReference) {
  at::Tensor x = torch::randn({4, 9}, torch::kDouble);
  const QuantRange r = tensor_range(x);
  at::Tensor out = torch::empty_like(x);
  EXPECT_TRUE(torch::equal(fake_quantize_out(x, 5, r, {}, out), reference::fake_quantize(x, 5, r)));
}

TEST(FakeQuantizeOut, RejectsMismatchedOrPartiallyOverlappingOut) {
  at::Tensor x = torch::randn({4, 8});
  const QuantRange r = tensor_range(x);
  at::Tensor wrong_shape = torch::empty({8, 4});
  EXPECT_THROW(fake_quantize_out(x, 8, r, {}, wrong_shape), fractrain::Error);
  at::Tensor wrong_dtype = torch::empty({4, 8}, torch::kDouble);
  EXPECT_THROW(fake_quantize_out(x, 8, r, {}, wrong_dtype), fractrain::Error);
  at::Tensor undefined;
  EXPECT_THROW(fake_quantize_out(x, 8, r, {}, undefined), fractrain::Error);
  at::Tensor storage = torch::randn({40});
  at::Tensor a = storage.slice(0, 0, 32).view({4, 8}), b = storage.slice(0, 8, 40).view({4, 8});
  EXPECT_ANY_THROW(fake_quantize_out(a, 8, tensor_range(a), {}, b));
  EXPECT_THROW(fake_quantize_rows_out(x, {8, 8, 8}, r, {}, x), fractrain::Error);
}
