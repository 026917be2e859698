#pragma once
// BatchNorm's input gradient as a per-channel affine combination, shared by the synchronised BatchNorm's backward
// (batch_norm.cpp, tensor ops, any device) and the fused BatchNorm + ReLU's (fused_batch_norm.cpp, CPU loops).

#include <ATen/ATen.h>

namespace fractrain {

// dx = gain (g - mean(g) - x_hat mean(g x_hat)) with gain = invstd weight and x_hat = (x - mean) invstd, written
// per channel as dx = a g + b x + k: rows a, b, k of the float64 [3, C] result. `invstd`, `mean`, `sum_g` (the sum
// of g) and `sum_g_xhat` (of g x_hat) are float64 [C] over the `count` values of each channel; `weight` may be
// undefined (gain = invstd).
inline at::Tensor input_gradient_coefficients(const at::Tensor& invstd, const at::Tensor& mean,
                                              const at::Tensor& weight, const at::Tensor& sum_g,
                                              const at::Tensor& sum_g_xhat, double count) {
  at::Tensor gain = invstd;
  if (weight.defined()) gain = gain * weight.to(at::kDouble);
  const at::Tensor mean_g = sum_g / count, mean_g_xhat = sum_g_xhat / count;
  return at::stack({gain, -gain * invstd * mean_g_xhat, gain * (mean * invstd * mean_g_xhat - mean_g)});
}

}  // namespace fractrain
