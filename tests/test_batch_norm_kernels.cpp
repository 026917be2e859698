// The fast per-channel passes of synchronised BatchNorm against plain torch arithmetic in float64.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "fractrain/nn/batch_norm_kernels.h"

namespace fractrain {
namespace {

using batch_norm_kernel::NchwShape;

NchwShape shape_of(const torch::Tensor& x) { return {x.size(0), x.size(1), x.size(2) * x.size(3)}; }

torch::Tensor as_tensor(const std::vector<double>& values) {
  return torch::tensor(at::ArrayRef<double>(values), torch::kDouble);
}

// Planes of 784 (the lane loop's 49 full rounds), 49 (3 rounds and a tail of 1), 5 (tail only) and 1 values;
// means of several standard deviations, as after a ReLU, so that cancellation would show.
std::vector<torch::Tensor> inputs() {
  torch::manual_seed(7);
  return {torch::randn({6, 3, 28, 28}) * 2 + 3, torch::randn({5, 8, 7, 7}) * 0.5 - 4, torch::randn({4, 2, 1, 5}) + 100,
          torch::randn({9, 4, 1, 1})};
}

struct Moments {
  std::vector<double> mean, m2;
};

Moments moments_of(const torch::Tensor& x) {
  Moments out{std::vector<double>(x.size(1)), std::vector<double>(x.size(1))};
  batch_norm_kernel::channel_moments(x.data_ptr<float>(), shape_of(x), out.mean.data(), out.m2.data());
  return out;
}

// Each lane adds at most 49 floats of magnitude |x| before the float64 sums: a relative error of at most
// ~49 * 2^-24 = 3e-6 of sum |x| per plane, far below it in practice; 1e-5 of the largest |x| (and of its square
// for m2 / count) bounds it with a margin and still fails for any wrong term.
TEST(BatchNormKernels, MomentsEqualFloat64MeanAndVariance) {
  for (const torch::Tensor& x : inputs()) {
    const Moments got = moments_of(x);
    const torch::Tensor x64 = x.to(torch::kDouble);
    const auto [var, mean] = at::var_mean(x64, {0, 2, 3}, /*unbiased=*/false);
    const double count = static_cast<double>(x.size(0) * x.size(2) * x.size(3));
    const double scale = x64.abs().max().item<double>();
    EXPECT_TRUE(torch::allclose(as_tensor(got.mean), mean, 0, 1e-5 * scale)) << x.sizes();
    EXPECT_TRUE(torch::allclose(as_tensor(got.m2) / count, var, 1e-5, 1e-5 * scale * scale)) << x.sizes();
  }
}

TEST(BatchNormKernels, GradientSumsEqualFloat64Sums) {
  for (const torch::Tensor& x : inputs()) {
    const torch::Tensor dy = torch::randn_like(x);
    const Moments m = moments_of(x);
    const int64_t channels = x.size(1);
    std::vector<double> sum_dy(channels), centred(channels);
    batch_norm_kernel::gradient_sums(dy.data_ptr<float>(), x.data_ptr<float>(), shape_of(x), m.mean.data(),
                                     sum_dy.data(), centred.data());
    // The reference subtracts the same float-rounded mean, in float64.
    const torch::Tensor centre = as_tensor(m.mean).to(torch::kFloat).to(torch::kDouble).view({1, -1, 1, 1});
    const torch::Tensor dy64 = dy.to(torch::kDouble), x64 = x.to(torch::kDouble);
    const torch::Tensor want_dy = dy64.sum({0, 2, 3});
    const torch::Tensor want_centred = (dy64 * (x64 - centre)).sum({0, 2, 3});
    const double dy_scale = dy64.abs().sum().item<double>() / static_cast<double>(channels);
    const double centred_scale = (dy64 * (x64 - centre)).abs().sum().item<double>() / static_cast<double>(channels);
    EXPECT_TRUE(torch::allclose(as_tensor(sum_dy), want_dy, 0, 1e-5 * dy_scale)) << x.sizes();
    EXPECT_TRUE(torch::allclose(as_tensor(centred), want_centred, 0, 1e-5 * centred_scale)) << x.sizes();
  }
}

// (a dy + b x) + c in float: four roundings of at most 2^-24 each, relative to |a dy| + |b x| + |c|, so the
// float64 value is at most 4 * 2^-24 of that away (torch's dy * a, addcmul_, add_ is as close, but not
// bit-equal: its vectorised addcmul rounds differently).
TEST(BatchNormKernels, AffineCombinationIsFloatRoundingOfTheExactValue) {
  for (const torch::Tensor& x : inputs()) {
    const torch::Tensor dy = torch::randn_like(x);
    const int64_t channels = x.size(1);
    const torch::Tensor a = torch::randn({channels}), b = torch::randn({channels}), c = torch::randn({channels});
    torch::Tensor out = torch::empty_like(x);
    batch_norm_kernel::channel_affine_combination(dy.data_ptr<float>(), x.data_ptr<float>(), shape_of(x),
                                                  a.data_ptr<float>(), b.data_ptr<float>(), c.data_ptr<float>(),
                                                  out.data_ptr<float>());
    auto per_channel = [](const torch::Tensor& v) { return v.to(torch::kDouble).view({1, -1, 1, 1}); };
    const torch::Tensor ady = dy.to(torch::kDouble) * per_channel(a), bx = x.to(torch::kDouble) * per_channel(b);
    const torch::Tensor exact = ady + bx + per_channel(c);
    const torch::Tensor bound = (ady.abs() + bx.abs() + per_channel(c).abs()) * (4.0 / (1 << 24));
    const torch::Tensor error = (out.to(torch::kDouble) - exact).abs();
    EXPECT_TRUE((error <= bound).all().item<bool>())
        << x.sizes() << ": worst error / bound " << (error / bound).max().item<double>();
  }
}

// Channels are split between threads, never one channel's sums: the results are the same on any thread count.
TEST(BatchNormKernels, ResultsDoNotDependOnTheThreadCount) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({64, 16, 28, 28}) + 1, dy = torch::randn_like(x);
  std::vector<std::vector<double>> results;
  const int saved = at::get_num_threads();
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    const Moments m = moments_of(x);
    std::vector<double> sum_dy(16), centred(16);
    batch_norm_kernel::gradient_sums(dy.data_ptr<float>(), x.data_ptr<float>(), shape_of(x), m.mean.data(),
                                     sum_dy.data(), centred.data());
    std::vector<double> all = m.mean;
    all.insert(all.end(), m.m2.begin(), m.m2.end());
    all.insert(all.end(), sum_dy.begin(), sum_dy.end());
    all.insert(all.end(), centred.begin(), centred.end());
    results.push_back(all);
  }
  at::set_num_threads(saved);
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

TEST(BatchNormKernels, NoSamplesGiveZeros) {
  const torch::Tensor x = torch::empty({0, 3, 4, 4});
  std::vector<double> mean(3, -1.0), m2(3, -1.0);
  batch_norm_kernel::channel_moments(x.data_ptr<float>(), shape_of(x), mean.data(), m2.data());
  EXPECT_EQ(mean, std::vector<double>(3, 0.0));
  EXPECT_EQ(m2, std::vector<double>(3, 0.0));
}

}  // namespace
}  // namespace fractrain
