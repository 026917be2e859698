#pragma once
// BatchNorm's input gradient as a per-channel affine combination, shared by the synchronised BatchNorm's backward
// (batch_norm.cpp, on tensors of any device) and the fused BatchNorm + ReLU's (fused_batch_norm.cpp, on one
// channel's doubles at a time: a plain loop, no dispatch per layer).

#include <array>

namespace fractrain {

// dx = gain (g - mean(g) - x_hat mean(g x_hat)) with x_hat = (x - mean) invstd and gain = invstd weight (invstd
// without a weight), written per channel as dx = a g + b x + k: returns {a, b, k}. `sum_g` is the sum of g and
// `sum_g_xhat` that of g x_hat over the `count` values of a channel. Value is double or a float64 at::Tensor of
// channels: the same operations in the same order either way.
template <class Value>
std::array<Value, 3> input_gradient_coefficients(const Value& invstd, const Value& mean, const Value& gain,
                                                 const Value& sum_g, const Value& sum_g_xhat, double count) {
  const Value mean_g = sum_g / count, mean_g_xhat = sum_g_xhat / count;
  return {gain, -gain * invstd * mean_g_xhat, gain * (mean * invstd * mean_g_xhat - mean_g)};
}

}  // namespace fractrain
