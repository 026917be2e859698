#include "fractrain/nn/decision_gate.h"

#include <torch/torch.h>

#include "fractrain/nn/spatial_mean.h"
#include "fractrain/util/device_constant.h"
#include "fractrain/util/error.h"

namespace fractrain {

DecisionGate::DecisionGate(const std::vector<int64_t>& block_channels, int64_t options) : options_(options) {
  if (options < 2) throw Error("a DFQ gate needs at least 2 options, got " + std::to_string(options));
  for (size_t i = 0; i < block_channels.size(); ++i) {
    torch::nn::Sequential embed(torch::nn::Linear(block_channels[i], kHidden), torch::nn::ReLU(),
                                torch::nn::Linear(kHidden, kEmbedding));
    embeddings_.push_back(register_module("embed" + std::to_string(i), embed));
  }
  lstm_ = register_module("lstm", torch::nn::LSTMCell(torch::nn::LSTMCellOptions(kEmbedding, kState)));
  head_ = register_module("head", torch::nn::Linear(kState, options));
}

GateDecision straight_through_decision(const at::Tensor& probabilities) {
  GateDecision d;
  d.probabilities = probabilities;
  const at::Tensor index = probabilities.detach().argmax(1);
  const at::Tensor onehot = torch::zeros_like(probabilities).scatter_(1, index.unsqueeze(1), 1.0);
  d.mask = onehot - probabilities.detach() + probabilities;
  d.indices = index;
  return d;
}

const std::vector<int64_t>& GateDecision::host_decisions() const {
  if (!host_) {
    const at::Tensor cpu = indices.to(at::kCPU).to(at::kLong).contiguous();
    const int64_t* first = cpu.data_ptr<int64_t>();
    host_ = std::make_shared<const std::vector<int64_t>>(first, first + cpu.numel());
  }
  return *host_;
}

GateDecision DecisionGate::decide(size_t block, const at::Tensor& x, const std::vector<bool>& allowed) {
  if (block >= embeddings_.size())
    throw Error("DFQ gate: block " + std::to_string(block) + " of " + std::to_string(embeddings_.size()));
  if (static_cast<int64_t>(allowed.size()) != options_) throw Error("DFQ gate: allowed-option list has wrong size");
  const at::Tensor pooled = spatial_mean(x);
  const at::Tensor embedding = embeddings_[block]->forward(pooled);
  state_ = lstm_->forward(embedding, state_);
  at::Tensor logits = head_->forward(std::get<0>(*state_));
  if (std::find(allowed.begin(), allowed.end(), false) != allowed.end()) {
    std::vector<float> penalty(allowed.size());
    for (size_t k = 0; k < allowed.size(); ++k) penalty[k] = allowed[k] ? 0.0f : -INFINITY;
    logits = logits + device_constant(penalty, logits.device());
  }
  return straight_through_decision(torch::softmax(logits, 1));
}

}  // namespace fractrain
