#pragma once
// Multiply-accumulate counts from layer shapes (per sample, forward pass).
#include <cstdint>

namespace fractrain {

// A convolution producing out_channels x out_h x out_w, each output summing (in_channels / groups) x k_h x k_w.
inline int64_t conv2d_macs(int64_t in_channels, int64_t out_channels, int64_t kernel_h, int64_t kernel_w,
                           int64_t out_h, int64_t out_w, int64_t groups = 1) {
  return out_channels * out_h * out_w * (in_channels / groups) * kernel_h * kernel_w;
}

// A linear layer applied to `tokens` vectors per sample (1 for a classifier).
inline int64_t linear_macs(int64_t in_features, int64_t out_features, int64_t tokens = 1) {
  return in_features * out_features * tokens;
}

}  // namespace fractrain
