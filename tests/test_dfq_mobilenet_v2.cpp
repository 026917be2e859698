// The DFQ-gated MobileNetV2: the inverted-residual block under mixed execution runs each sample as if alone at
// its choice, with the depthwise conv at FW-8/BW-16 whatever the option; the model makes one decision per block
// and sample and skips only identity blocks; a forced option gives the same logits in mixed and candidates
// execution and as the static network at that precision; the cost meter, the cost term and the block MACs match
// hand counts for a tiny input; a few DFQ steps lower the loss; the trainer runs it in dfq and fractrain modes
// (options "auto" = mobilenet-paper), and the report draws its 17 blocks in execution order.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <iterator>

#include "dfq_test_support.h"
#include "fractrain/cost/bit_product.h"
#include "fractrain/cost/cost_meter.h"
#include "fractrain/cost/hardware_model.h"
#include "fractrain/models/gated_model.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/report/run_report.h"
#include "fractrain/precision/gating_cost.h"
#include "fractrain/util/gnuplot.h"
#include "model_test_support.h"
#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::CostRecorder;
using test_support::fixed_decision;
using test_support::trained_block;

namespace {

const OptionSet& mobilenet_options() {
  static const OptionSet options = OptionSet::parse("mobilenet-paper", 0);  // skip, 4/8, 6/8, 6/10, 8/8; w 8
  return options;
}
constexpr int64_t kSkip = 0, kOptions = 5;

// The blocks with an identity residual (stride 1, same channels in and out), from the stage table:
// 24x2 (the 2nd), 32x3 (2nd, 3rd), 64x4 (2nd..4th), 96x3 (2nd, 3rd), 160x3 (2nd, 3rd).
const std::vector<bool>& identity_blocks() {
  static const std::vector<bool> identity = {false, false, true, false, true, true, false, true, true,
                                             true,  false, true, true,  false, true, true, false};
  return identity;
}

// Every gate of `model` picks option k for every sample (where allowed; a block that cannot skip then takes the
// first other option): the shared output layer's weights zeroed, its bias favouring k.
void force_option(QuantizedModel& model, int64_t k) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    if (p.key() == "gate.head.weight") p.value().zero_();
    if (p.key() == "gate.head.bias") p.value().zero_().index_put_({k}, 10.0);
  }
}

std::shared_ptr<GatedMobileNetV2> gated_model(const ModelInputSpec& input, GateExecution execution) {
  torch::manual_seed(3);
  return std::make_shared<GatedMobileNetV2>(mobilenet_options(), execution, input);
}

}  // namespace

TEST(DfqInvertedResidual, MixedExecutionRunsEachSampleAsAloneAtItsChoice) {
  // An identity block (expansion 2) with skips, and a strided block that changes channels (never skipped).
  test_support::expect_each_sample_runs_as_alone(*trained_block<InvertedResidual>(8, 8, 1, 2), mobilenet_options(),
                                                 {1, 0, 4, 3, 0, 2}, 8, {8, 6, 6});
  test_support::expect_each_sample_runs_as_alone(*trained_block<InvertedResidual>(4, 8, 2, 6), mobilenet_options(),
                                                 {1, 2, 4, 3, 4, 1}, 4, {8, 3, 3});
}

TEST(DfqInvertedResidual, DepthwiseRunsAtFw8Bw16AndSkippedSamplesCostNothing) {
  auto block = trained_block<InvertedResidual>(8, 8, 1, 2);
  ASSERT_TRUE(block->can_skip());
  CostRecorder recorder;
  for (auto& l : block->layers()) l->set_cost_observer(&recorder);
  block->train();
  const at::Tensor x = torch::rand({4, 8, 6, 6});
  const GatedBlockRun run{mobilenet_options(), 0, false};
  // Decisions {skip, 4/8, skip, 8/8}: expand, depthwise and project charged once each for samples 1 and 3, the
  // 1x1 convs at the samples' options, the depthwise conv at FW-8/BW-16; candidates execution charges the same.
  auto expect_charged = [&](const char* mode) {
    ASSERT_EQ(recorder.calls.size(), 3u) << mode;
    for (const auto& c : recorder.calls) {
      EXPECT_EQ(c.batch, 2) << mode << " " << c.layer;
      if (c.layer == "l1") {  // the depthwise conv
        EXPECT_EQ(c.samples, std::vector<Precision>{Precision::fw_bw(8, 16)}) << mode;
      } else {
        EXPECT_EQ(c.samples, (std::vector<Precision>{mobilenet_options().at(1), mobilenet_options().at(4)})) << mode;
      }
    }
    recorder.calls.clear();
  };
  run_gated_block_mixed(*block, x, fixed_decision({0, 1, 0, 4}, kOptions), run);
  expect_charged("mixed");
  run_gated_block_candidates(*block, x, fixed_decision({0, 1, 0, 4}, kOptions), run);
  expect_charged("candidates");
  // Every sample skips: nothing runs, nothing is charged, the output is the input.
  EXPECT_TRUE(torch::equal(run_gated_block_mixed(*block, x, fixed_decision({0, 0, 0, 0}, kOptions), run), x));
  EXPECT_TRUE(recorder.calls.empty());
}

TEST(DfqGatedMobileNetV2, OneDecisionPerBlockAndSampleSkippingOnlyIdentityBlocks) {
  const ModelInputSpec input{1, 8, 8, 10};
  auto model = create_gated_model("mobilenetv2", input, mobilenet_options(), GateExecution::Mixed);
  const QuantizedModel& gated = *model;
  ASSERT_EQ(gated.gated_blocks().size(), 17u);
  EXPECT_EQ(gated.gated_blocks().front(), "blocks.0");
  EXPECT_EQ(gated.gated_blocks().back(), "blocks.16");
  model->train();
  force_option(*model, kSkip);
  const ForwardResult result = model->run(torch::rand({3, 1, 8, 8}), PrecisionPlan::uniform(Precision::full()));
  const at::Tensor& logits = result.output;
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 10}));
  const auto& gating = result.decisions;
  const auto decisions = options_on_host(gating);
  ASSERT_EQ(gating.size(), 17u);
  for (size_t b = 0; b < gating.size(); ++b) {
    EXPECT_EQ(gating[b].block, gated.gated_blocks()[b]);
    EXPECT_EQ(gating[b].mask.sizes(), (std::vector<int64_t>{3, kOptions}));
    ASSERT_EQ(decisions[b].size(), 3u);
    for (int64_t k : decisions[b]) EXPECT_EQ(k, identity_blocks()[b] ? kSkip : 1) << gating[b].block;
    // Where skip is not allowed its probability, and so its mask column, is exactly 0.
    if (!identity_blocks()[b]) {
      EXPECT_EQ(gating[b].mask.select(1, kSkip).abs().sum().item<double>(), 0.0);
    }
  }
}

TEST(DfqGatedMobileNetV2, ABlockThatCannotNormaliseItsBatchIsNamed) {
  // 8x8 images leave 1x1 maps in the last stage: one sample there gives BatchNorm one value per channel.
  auto model = gated_model(ModelInputSpec{1, 8, 8, 10}, GateExecution::Mixed);
  model->train();
  const std::string message = test_support::error_of(
      [&] { model->forward(torch::rand({1, 1, 8, 8}), PrecisionPlan::uniform(Precision::full())); });
  EXPECT_NE(message.find("gated block blocks.13"), std::string::npos) << message;
  EXPECT_NE(message.find("use larger images"), std::string::npos) << message;
}

TEST(DfqGatedMobileNetV2, ForcedOptionGivesTheSameLogitsMixedCandidatesAndStatic) {
  const ModelInputSpec input{1, 8, 8, 10};
  auto mixed = gated_model(input, GateExecution::Mixed);
  auto candidates = gated_model(input, GateExecution::Candidates);
  mixed->train();
  candidates->train();  // training mode: candidates execution, batch statistics (no dependence on history)
  const at::Tensor x = torch::rand({4, 1, 8, 8});
  const PrecisionPlan gates = PrecisionPlan::uniform(Precision::full());
  // 6/10 everywhere is the static network with the 1x1 convs at a6/w8/g10, the depthwise convs at FW-8/BW-16 and
  // the stem, last conv and classifier FP32.
  force_option(*mixed, 3);
  force_option(*candidates, 3);
  PrecisionPlan fixed = make_static_plan(*mixed, Precision{6, 8, 10, false}, QuantizationPolicy{});
  for (const char* layer : {"stem", "last", "fc"}) fixed.set_layer(layer, LayerPrecision::uniform(Precision::full()));
  fixed.gating = false;
  const at::Tensor reference = mixed->forward(x, fixed);
  EXPECT_TRUE(torch::allclose(mixed->forward(x, gates), reference, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(candidates->forward(x, gates), reference, 1e-4, 1e-5));
  // Skip where allowed (4/8 elsewhere): mixed and candidates agree.
  force_option(*mixed, kSkip);
  force_option(*candidates, kSkip);
  EXPECT_TRUE(torch::allclose(mixed->forward(x, gates), candidates->forward(x, gates), 1e-4, 1e-5));
}

namespace {

struct BlockMacs {
  int64_t option = 0, depthwise = 0;  // per sample: the 1x1 convs, the depthwise conv
};

// From the stage table (CIFAR strides) for a size x size input: the stem keeps the size.
std::vector<BlockMacs> block_macs_by_hand(int64_t size) {
  std::vector<BlockMacs> blocks;
  int64_t h = size, in = MobileNetV2::kStemChannels;
  for (const auto& stage : MobileNetV2::stages()) {
    for (int64_t i = 0; i < stage.n; ++i) {
      const int64_t stride = i == 0 ? stage.s : 1, hidden = in * stage.t, h_out = (h - 1) / stride + 1;
      BlockMacs b;
      if (stage.t != 1) b.option += h * h * in * hidden;
      b.depthwise = h_out * h_out * hidden * 9;
      b.option += h_out * h_out * hidden * stage.c;
      blocks.push_back(b);
      h = h_out;
      in = stage.c;
    }
  }
  return blocks;
}

}  // namespace

TEST(DfqGatedMobileNetV2, CostOfAForcedOptionEqualsTheHandCount) {
  const ModelInputSpec input{1, 8, 8, 10};
  auto model = gated_model(input, GateExecution::Mixed);
  CostMeter meter(profile_model(*model, input), builtin_hardware_model());
  model->set_cost_observer(&meter);
  model->train();
  const std::vector<BlockMacs> hand = block_macs_by_hand(8);
  const double depthwise_cost = relative_training_cost(Precision::fw_bw(8, 16));  // (64 + 128 + 128) / 3072
  const OptionSet& options = mobilenet_options();
  double block_macs = 0;
  for (const auto& b : hand) block_macs += static_cast<double>(b.option + b.depthwise);
  // The last conv is not a block layer: the blocks' MACs are the profile's.
  EXPECT_EQ(meter.profile().forward_macs(LayerRole::Block), static_cast<int64_t>(block_macs));
  EXPECT_EQ(meter.profile().forward_macs(LayerRole::Head), 320 * 1280);  // 8x8 -> 4 -> 2 -> 1x1 at the last conv
  const double mean_macs = block_macs / 17.0;

  for (int64_t forced : {int64_t{2}, kSkip}) {  // 6/8 everywhere; skip on identity blocks, 4/8 elsewhere
    force_option(*model, forced);
    const auto gating = model->run(torch::rand({2, 1, 8, 8}), PrecisionPlan::uniform(Precision::full())).decisions;
    double bit_macs = 0, cost_term = 0;
    for (size_t b = 0; b < hand.size(); ++b) {
      EXPECT_EQ(gating[b].macs_per_sample, hand[b].option + hand[b].depthwise) << b;
      EXPECT_EQ(gating[b].fixed_macs_per_sample, hand[b].depthwise) << b;
      const bool skipped = forced == kSkip && identity_blocks()[b];
      const size_t k = forced == kSkip && !identity_blocks()[b] ? 1 : static_cast<size_t>(forced);
      const double per_sample =
          skipped ? 0.0
                  : static_cast<double>(hand[b].option) * options.relative_cost(k) +
                        static_cast<double>(hand[b].depthwise) * depthwise_cost;
      bit_macs += 2 * per_sample;
      cost_term += 2 * 3.0 * per_sample / mean_macs;
    }
    const double cp_blocks = 100.0 * bit_macs / (2 * block_macs);
    EXPECT_NEAR(meter.step_in_progress(2).cp_blocks(), cp_blocks, 1e-9 * cp_blocks) << "option " << forced;
    EXPECT_NEAR(gating_cost(gating, options).item<double>(), cost_term, 1e-4 * cost_term) << "option " << forced;
    meter.end_step(2);
  }
}

TEST(DfqGatedMobileNetV2, DfqStepsOnOneBatchLowerTheLoss) {
  // 16x16: the last stage's maps are 2x2, so BatchNorm has batch statistics even when one sample runs a block.
  const ModelInputSpec input{1, 16, 16, 10};
  auto model = gated_model(input, GateExecution::Mixed);
  PrecisionPlan plan = PrecisionPlan::uniform(Precision::full());  // gating on: the gates choose every block's
  const auto losses =
      test_support::losses_on_one_batch(*model, plan, input, 16, 12, [&](const std::vector<BlockDecision>& decisions) {
        return 1e-3 * gating_cost(decisions, model->option_set());
      });
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

TEST(DfqGatedMobileNetV2, AutoOptionsAreTheModelsPreset) {
  RunConfig c;
  c.precision.mode = PrecisionMode::Dfq;
  c.model.name = "mobilenetv2";
  EXPECT_EQ(dfq_option_set(c).name(), "mobilenet-paper");
  c.model.name = "resnet20";
  EXPECT_EQ(dfq_option_set(c).name(), "cifar-release");
  c.dfq.options = "cifar-paper";
  EXPECT_EQ(dfq_option_set(c).name(), "cifar-paper");
}

TEST(DfqGatedMobileNetV2, TrainerRunsDfqAndFracTrain) {
  ASSERT_FASHION_MNIST_INSTALLED();
  for (const char* mode : {"dfq", "fractrain"}) {
    test_support::TempDir temp(std::string("fractrain_mnv2_") + mode);
    RunConfig c = test_support::small_run(temp.str(), "mobilenetv2", 64, 32);
    c.data.test_subset = 32;
    c.precision.mode = precision_mode_names().parse(mode, "precision.mode");
    c.dfq.target_cp = 4.0;  // dfq.options left "auto": mobilenet-paper for this model
    c.dfq.stages = 2;
    c.train.iterations = 4;
    c.train.eval_every = 2;
    const nlohmann::json s = train_run(c, test_support::quiet());
    const auto rows = test_support::read_metrics(temp.str());
    ASSERT_EQ(rows.size(), 2u) << mode;
    EXPECT_EQ(rows.back()["gate_selection"].size(), 17u) << mode;
    EXPECT_EQ(rows.back()["gate_options"],
              (nlohmann::json::array({"skip", "4/8", "6/8", "6/10", "8/8"}))) << mode;
    // The blocks' cp lies between all-skip (0) and every block at 8/8 with the depthwise convs at 8/16.
    const double cp = s["cost"]["run"]["cp_blocks_percent"].get<double>();
    EXPECT_GT(cp, 0.0) << mode;
    EXPECT_LT(cp, 100.0 * relative_training_cost(Precision::fw_bw(8, 16))) << mode;
    // The bit-allocation heatmap lists the blocks in execution order (blocks.2 before blocks.10), although
    // metrics.jsonl keeps them in string order.
    if (std::string(mode) == "dfq" && gnuplot_available()) {
      write_run_report(temp.str(), {});
      std::ifstream svg(temp.str() + "/report/bit_allocation.svg");
      const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
      ASSERT_NE(text.find("blocks.10<"), std::string::npos);
      EXPECT_LT(text.find("blocks.2<"), text.find("blocks.10<"));
    }
  }
}
