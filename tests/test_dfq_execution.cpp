// Gated execution of a BasicBlock and of the gated ResNet: in `mixed` mode a sample's output and input
// gradient are those of running it alone at its chosen precision (same quantization ranges: eval mode, where
// ranges are the running ones); a skipped sample outputs its shortcut and costs no block MACs; `candidates`
// charges the chosen options only; the meter's cp of a step is the hand count of the decisions.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/cost/hardware_model.h"
#include "fractrain/models/gated_model.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/precision/gating_cost.h"
#include "dfq_test_support.h"

using namespace fractrain;

using test_support::CostRecorder;
using test_support::fixed_decision;
using test_support::trained_block;

TEST(DfqMixedExecution, EachSampleEqualsRunningItAloneAtItsChoice) {
  const OptionSet options = OptionSet::parse("cifar-paper", 0);  // skip, 2/6, 3/6, 4/6, 4/12, 6/8, 6/12
  test_support::expect_each_sample_runs_as_alone(*trained_block<BasicBlock>(4, 4, 1), options, {1, 0, 5, 3, 0, 6}, 4,
                                                 {4, 6, 6});
  // A block with a projection shortcut (never skipped) in a set that has skip.
  test_support::expect_each_sample_runs_as_alone(*trained_block<BasicBlock>(4, 8, 2), options, {1, 2, 5, 3, 4, 6}, 4,
                                                 {8, 3, 3});
}

namespace {

// Decisions {skip, 4/6, skip, 6/8}: the block's two convs are charged once each, for the two samples that run.
void expect_charged_for_samples_1_and_3(const CostRecorder& recorder, const OptionSet& options) {
  ASSERT_EQ(recorder.calls.size(), 2u);
  for (const auto& c : recorder.calls) {
    EXPECT_EQ(c.batch, 2);
    EXPECT_EQ(c.samples[0], options.at(3));
    EXPECT_EQ(c.samples[1], options.at(5));
  }
}

}  // namespace

// An identity block in training mode whose convs report to `recorder`, and a batch of 4 for it.
struct RecordedBlock : ::testing::Test {
  void SetUp() override {
    for (auto& l : block->layers()) l->set_cost_observer(&recorder);
    block->train();
  }
  const OptionSet options = OptionSet::parse("cifar-paper", 0);
  std::shared_ptr<BasicBlock> block = trained_block<BasicBlock>(4, 4, 1);
  CostRecorder recorder;
  const at::Tensor x = torch::rand({4, 4, 6, 6});
};

using DfqMixedExecutionCost = RecordedBlock;
using DfqCandidatesExecution = RecordedBlock;

TEST_F(DfqMixedExecutionCost, SkippedSamplesCostNoBlockMacs) {
  run_gated_block_mixed(*block, x, fixed_decision({0, 3, 0, 5}, 7), GatedBlockRun{options, 0, false});
  expect_charged_for_samples_1_and_3(recorder, options);
  recorder.calls.clear();
  const at::Tensor y = run_gated_block_mixed(*block, x, fixed_decision({0, 0, 0, 0}, 7), GatedBlockRun{options, 0, false});
  EXPECT_TRUE(recorder.calls.empty());
  EXPECT_TRUE(torch::equal(y, x));
}

TEST_F(DfqCandidatesExecution, RunsEveryOptionButChargesTheChosenOnes) {
  const GateDecision decision = fixed_decision({0, 3, 0, 5}, 7);
  const at::Tensor y = run_gated_block_candidates(*block, x, decision, GatedBlockRun{options, 0, false});
  expect_charged_for_samples_1_and_3(recorder, options);
  EXPECT_TRUE(torch::allclose(y.narrow(0, 0, 1), x.narrow(0, 0, 1)));  // skipped: the shortcut
  // The gate's probabilities get a gradient from the task loss through the mixture of outputs.
  y.sum().backward();
  EXPECT_GT(decision.probabilities.grad().abs().sum().item<double>(), 0.0);
}

TEST(DfqGatedResNet, OneDecisionPerBlockAndSampleAndTheMeterCountsThem) {
  torch::manual_seed(1);
  const ModelInputSpec input{1, 12, 12, 10};
  GatedResNet model(OptionSet::parse("cifar-release", 0), GateExecution::Mixed, cifar_resnet_layout(8), input);
  CostMeter meter(profile_model(model, input), builtin_hardware_model());
  model.set_cost_observer(&meter);
  model.train();
  const PrecisionPlan plan = PrecisionPlan::uniform(Precision::full());  // gating on; stem and fc FP32
  const ForwardResult result = model.run(torch::rand({5, 1, 12, 12}), plan);
  EXPECT_EQ(result.output.sizes(), (std::vector<int64_t>{5, 10}));
  const auto& gating = result.decisions;
  const auto decisions = options_on_host(gating);
  ASSERT_EQ(gating.size(), 3u);  // resnet8: one block per stage
  EXPECT_EQ(model.gated_blocks(), (std::vector<std::string>{"stage1.0", "stage2.0", "stage3.0"}));
  // Hand count of the blocks' cp from the decisions: MACs x (aw + gw + ag) over 3 x 32^2 x FP32 MACs.
  double bit_macs = 0, fp32 = 0;
  for (size_t b = 0; b < gating.size(); ++b) {
    const auto& g = gating[b];
    ASSERT_EQ(decisions[b].size(), 5u);
    EXPECT_EQ(g.mask.sizes(), (std::vector<int64_t>{5, 5}));
    for (int64_t k : decisions[b]) bit_macs += g.macs_per_sample * model.option_set().relative_cost(k);
    fp32 += 5.0 * g.macs_per_sample;
  }
  const double cp_blocks = 100.0 * bit_macs / fp32;
  EXPECT_NEAR(meter.step_in_progress(5).cp_blocks(), cp_blocks, 1e-9 * cp_blocks);
  EXPECT_EQ(meter.profile().forward_macs(LayerRole::Block), gating[0].macs_per_sample + gating[1].macs_per_sample +
                                                                 gating[2].macs_per_sample);
  // The cost term: mask-weighted option costs, each block scaled by its MACs over the mean block MACs.
  double expected = 0, mean = fp32 / 5.0 / 3.0;
  for (size_t b = 0; b < gating.size(); ++b)
    for (int64_t k : decisions[b])
      expected += 3.0 * model.option_set().relative_cost(k) * gating[b].macs_per_sample / mean;
  EXPECT_NEAR(gating_cost(gating, model.option_set()).item<double>(), expected, 1e-4 * expected);
}
