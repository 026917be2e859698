#pragma once
// The DFQ precision gate (DESIGN.md 4.5): for each gated block and each sample it picks one of K precision
// options. Per block: global average pool -> 1x1 conv (C -> 32) -> ReLU -> 1x1 conv (32 -> 16) gives an
// embedding (on a pooled 1x1 map a 1x1 conv is a linear layer, which is how it is computed); one LSTM cell
// (16 -> 16) shared by every block takes one step per block (depth is the sequence axis, the state starts at
// zero in every forward pass); a linear layer (16 -> K), also shared, and a softmax give the probabilities p.
// The decision is argmax p, and the straight-through mask onehot - p.detach() + p carries gradients to p.
// The gate runs in FP32 and is not counted as training cost (a few thousand MACs per block and sample).
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>

#include <memory>
#include <optional>
#include <tuple>
#include <vector>

namespace fractrain {

struct GateDecision {
  at::Tensor probabilities;  // [N, K]
  at::Tensor mask;           // [N, K]: one-hot in value, gradient of `probabilities`
  at::Tensor indices;        // [N] int64: the option index of each sample, on the input's device
  // The same on the host (mixed execution's per-sample precisions are host vectors), copied from `indices` on
  // first use: on a GPU that copy synchronises with the host, which masked execution never asks for.
  const std::vector<int64_t>& host_decisions() const;

 private:
  mutable std::shared_ptr<const std::vector<int64_t>> host_;
};

class DecisionGate : public torch::nn::Module {
 public:
  static constexpr int64_t kHidden = 32, kEmbedding = 16, kState = 16;

  // One embedding per gated block (its input channel count), one LSTM and one output layer for all.
  DecisionGate(const std::vector<int64_t>& block_channels, int64_t options);

  // Call before the first block of every forward pass: the recurrent state starts at zero.
  void reset() { state_ = c10::nullopt; }
  // The decision for block `block` given its input x [N, C, H, W]; options with allowed[k] == false get
  // probability 0 (e.g. skip where the block changes shape). Advances the recurrent state by one step.
  GateDecision decide(size_t block, const at::Tensor& x, const std::vector<bool>& allowed);

  int64_t options() const { return options_; }
  size_t blocks() const { return embeddings_.size(); }

 private:
  int64_t options_;
  std::vector<torch::nn::Sequential> embeddings_;
  torch::nn::LSTMCell lstm_{nullptr};
  torch::nn::Linear head_{nullptr};
  c10::optional<std::tuple<at::Tensor, at::Tensor>> state_;
};

// The straight-through one-hot of argmax p (rows of p are probabilities) and the decisions; used by the gate,
// exposed for tests.
GateDecision straight_through_decision(const at::Tensor& probabilities);

}  // namespace fractrain
