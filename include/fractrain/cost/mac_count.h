#pragma once
// Multiply-accumulate counts from layer shapes (per sample, forward pass).
#include <cstdint>

namespace fractrain {

// A convolution producing out_channels x out_h x out_w, each output summing (in_channels / groups) x k_h x k_w.
// groups == in_channels is a depthwise convolution (one k_h x k_w filter per channel).
inline int64_t conv2d_macs(int64_t in_channels, int64_t out_channels, int64_t kernel_h, int64_t kernel_w,
                           int64_t out_h, int64_t out_w, int64_t groups = 1) {
  return out_channels * out_h * out_w * (in_channels / groups) * kernel_h * kernel_w;
}

// A linear layer applied to `tokens` vectors per sample (1 for a classifier).
inline int64_t linear_macs(int64_t in_features, int64_t out_features, int64_t tokens = 1) {
  return in_features * out_features * tokens;
}

// The two activation-by-activation matmuls of multi-head attention for one sequence: the scores Q K^T
// ([query_len x head_dim] x [head_dim x key_len] per head) and the context A V ([query_len x key_len] x
// [key_len x head_dim] per head). The Q/K/V/output projections are linear layers and counted as such. A causal
// mask does not change the count: the matmuls are computed in full and masked afterwards.
struct AttentionMacs {
  int64_t scores = 0;   // Q K^T
  int64_t context = 0;  // A V
  int64_t total() const { return scores + context; }
};

inline AttentionMacs attention_macs(int64_t query_len, int64_t key_len, int64_t heads, int64_t head_dim) {
  const int64_t per_matmul = heads * query_len * key_len * head_dim;
  return AttentionMacs{per_matmul, per_matmul};
}

}  // namespace fractrain
