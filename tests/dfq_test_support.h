#pragma once
// Helpers for tests of DFQ-gated execution, for any gateable block (ResNet BasicBlock, MobileNetV2 inverted
// residual): fixed gate decisions, a recorder of what the layers report to the cost meter, a block with running
// statistics, and the check that mixed execution runs every sample as if alone at its choice.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "fractrain/models/gated_block.h"

namespace fractrain::test_support {

// One layer execution as the cost observer saw it: the layer, the batch and each sample's precision (one
// entry when the precision is uniform).
struct ReportedCall {
  std::string layer;
  int64_t batch;
  std::vector<Precision> samples;
};

struct CostRecorder : CostObserver {
  std::vector<ReportedCall> calls;
  void on_layer(const LayerExecution& e) override {
    ReportedCall c{e.layer, e.batch, {}};
    for (int64_t i = 0; i < (e.precision.is_per_sample() ? e.batch : 1); ++i) c.samples.push_back(e.precision.for_sample(i));
    calls.push_back(c);
  }
};

// A decision with fixed choices (the mask one-hot, differentiable through `probabilities`).
inline GateDecision fixed_decision(const std::vector<int64_t>& choices, int64_t options) {
  at::Tensor p = torch::full({static_cast<int64_t>(choices.size()), options}, 0.01);
  for (size_t n = 0; n < choices.size(); ++n) p[static_cast<int64_t>(n)][choices[n]] = 1.0;
  p = (p / p.sum(1, true)).requires_grad_();
  return straight_through_decision(p);
}

// A block (a torch Module that is a GateableBlock) whose layers are named "l0", "l1", ... and have running
// activation ranges and BN statistics from a few training passes at FW-8/BW-8 on in_channels x 6 x 6 inputs.
template <class Block, class... Args>
std::shared_ptr<Block> trained_block(int64_t in_channels, Args... args) {
  torch::manual_seed(11);
  auto block = std::make_shared<Block>(in_channels, args...);
  int i = 0;
  for (auto& l : block->layers()) l->set_layer_name("l" + std::to_string(i++));
  block->train();
  torch::NoGradGuard no_grad;
  for (int step = 0; step < 3; ++step) {
    const at::Tensor x = torch::rand({8, in_channels, 6, 6});
    block->residual(x, LayerPrecision::uniform(Precision::fw_bw(8, 8)), step);
    block->shortcut(x, LayerPrecision::uniform(Precision::fw_bw(8, 8)), step);
  }
  return block;
}

// In eval mode (running ranges and statistics, so a sample's result does not depend on the batch), mixed
// execution gives every sample the output and input gradient of running it alone at its choice (a skipped
// sample: its input), and the gate's probabilities a task-loss gradient. `output` is the block output's shape
// for one sample.
template <class Block>
void expect_each_sample_runs_as_alone(Block& block, const OptionSet& options, const std::vector<int64_t>& choices,
                                      int64_t in_channels, std::vector<int64_t> output) {
  block.eval();
  const auto n_samples = static_cast<int64_t>(choices.size());
  const GateDecision decision = fixed_decision(choices, static_cast<int64_t>(options.size()));
  const at::Tensor x = torch::rand({n_samples, in_channels, 6, 6}).requires_grad_();
  output.insert(output.begin(), n_samples);
  const at::Tensor upstream = torch::randn(output);
  const at::Tensor y = run_gated_block_mixed(block, x, decision, GatedBlockRun{options, 0, false});
  (upstream * y).sum().backward();

  for (int64_t n = 0; n < n_samples; ++n) {
    const at::Tensor xn = x.detach().narrow(0, n, 1).clone().requires_grad_();
    const Precision& p = options.at(static_cast<size_t>(choices[n]));
    at::Tensor alone;
    if (p.skip) {
      alone = xn * 1.0;  // the identity shortcut
    } else {
      const auto lp = LayerPrecision::uniform(p);
      alone = block.combine(block.residual(xn, lp, 0), block.shortcut(xn, lp, 0));
    }
    (upstream.narrow(0, n, 1) * alone).sum().backward();
    EXPECT_TRUE(torch::allclose(y.narrow(0, n, 1), alone, 1e-5, 1e-5)) << "sample " << n;
    EXPECT_TRUE(torch::allclose(x.grad().narrow(0, n, 1), xn.grad(), 1e-5, 1e-5)) << "sample " << n;
    if (p.skip) {
      EXPECT_TRUE(torch::equal(y.narrow(0, n, 1), x.detach().narrow(0, n, 1)));
    }
  }
  // The gate learns from the task loss through every option column.
  ASSERT_TRUE(decision.probabilities.grad().defined());
  EXPECT_GT(decision.probabilities.grad().abs().sum().item<double>(), 0.0);
}

}  // namespace fractrain::test_support
