// The cost meter counts what the layers executed: bit-product identities of cp, exact shares of layers run at
// another precision, per sample or not at all, the stem's error backward, references, periods and resume state.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/cost/static_cost.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/precision/static_plan.h"
#include "test_support.h"

using namespace fractrain;

namespace {

const ModelInputSpec kInput{3, 8, 8, 10};  // small images keep the training forwards cheap
constexpr int64_t kBatch = 4;

HardwareModel hardware() { return builtin_hardware_model(); }

struct Fixture {
  std::shared_ptr<QuantizedModel> model = create_model("resnet20", kInput);
  ModelProfile profile = profile_model(*model, kInput);
  CostMeter meter{profile, hardware()};

  Fixture() { model->set_cost_observer(&meter); }

  // One training forward (backward passes follow in training; the meter counts them from the forward).
  void step(const PrecisionPlan& plan) {
    model->train();
    torch::manual_seed(0);
    model->forward(torch::randn({kBatch, kInput.channels, kInput.height, kInput.width}), plan);
    meter.end_step(kBatch);
  }
  CostTotals last_step() const { return summarize(meter.ledger().last_step, profile); }
  const LayerCost& last_step_layer(const std::string& name) const {
    return meter.ledger().last_step.layers.at(static_cast<size_t>(profile.index_of(name)));
  }
};

double fw(const CostTotals& t) { return t.passes[0].bit_macs; }
double eb(const CostTotals& t) { return t.passes[1].bit_macs; }
double gc(const CostTotals& t) { return t.passes[2].bit_macs; }

}  // namespace

TEST(CostMeter, BitProductIdentitiesOfCp) {
  // Every layer (stem and classifier included) at one precision: cp is the bit product over 32 x 32.
  const std::vector<std::pair<Precision, double>> cases = {
      {Precision::fw_bw(8, 8), 6.25}, {Precision::fw_bw(8, 16), 100.0 * (64 + 128 + 128) / 3072.0},
      {Precision::full(), 100.0}, {Precision::fw_bw(4, 8), 100.0 * (16 + 32 + 32) / 3072.0}};
  for (const auto& [precision, expected] : cases) {
    Fixture f;
    f.step(PrecisionPlan::uniform(precision));
    const CostTotals t = f.last_step();
    EXPECT_NEAR(t.cp(), expected, 1e-12) << to_string(precision);
    EXPECT_NEAR(t.cp_blocks(), expected, 1e-12) << to_string(precision);
    // The paper's "MACs": cp x 3 x forward MACs x samples.
    EXPECT_NEAR(t.paper_macs(), expected / 100 * 3 * f.profile.forward_macs() * kBatch, 1e-6);
  }
  EXPECT_NEAR(100.0 * (64 + 128 + 128) / 3072.0, 10.42, 0.005);  // FW-8/BW-16, as the issue states it
}

TEST(CostMeter, PassesCountMacsTimesTheirOperandWidths) {
  Fixture f;
  f.step(PrecisionPlan::uniform(Precision{4, 6, 8, false}));  // act 4, weight 6, grad 8
  const CostTotals t = f.last_step();
  const double macs = static_cast<double>(f.profile.forward_macs()) * kBatch;
  const double stem = static_cast<double>(f.profile.forward_macs(LayerRole::Stem)) * kBatch;
  EXPECT_EQ(fw(t), macs * 4 * 6);
  EXPECT_EQ(eb(t), (macs - stem) * 8 * 6);  // the stem's error backward is not executed
  EXPECT_EQ(gc(t), macs * 4 * 8);
  EXPECT_EQ(t.paper_bit_macs, macs * (4 * 6 + 8 * 6 + 4 * 8));  // ... but the paper counts it
  EXPECT_EQ(t.passes[0].macs, macs);
  EXPECT_EQ(t.passes[1].macs, macs - stem);
  // BitBricks: ceil(4/2) ceil(6/2) = 6 per forward MAC.
  EXPECT_EQ(t.passes[0].bitbrick_ops, macs * 6);
  const LayerCost& s = f.last_step_layer("stem");
  EXPECT_EQ(s.passes[1].bit_macs, 0);
  EXPECT_EQ(s.passes[1].energy_j, 0);
  EXPECT_EQ(s.passes[1].latency_s, 0);
  EXPECT_GT(s.passes[0].energy_j, 0);
}

TEST(CostMeter, ALayerAtAnotherPrecisionChangesTheTotalByExactlyItsShare) {
  Fixture base, changed;
  const std::string layer = "stage2.0.conv1";
  base.step(PrecisionPlan::uniform(Precision::fw_bw(8, 8)));
  PrecisionPlan plan = PrecisionPlan::uniform(Precision::fw_bw(8, 8));
  plan.set_layer(layer, LayerPrecision::uniform(Precision::fw_bw(4, 6)));
  changed.step(plan);
  const double macs = static_cast<double>(base.profile.layers()[base.profile.index_of(layer)].macs_per_sample) * kBatch;
  const CostTotals a = base.last_step(), b = changed.last_step();
  EXPECT_EQ(fw(a) - fw(b), macs * (64 - 16));
  EXPECT_EQ(eb(a) - eb(b), macs * (64 - 24));
  EXPECT_EQ(gc(a) - gc(b), macs * (64 - 24));
  // Every other layer costs the same, energy and latency included.
  for (size_t i = 0; i < base.profile.layers().size(); ++i) {
    const LayerCost& x = base.meter.ledger().last_step.layers[i];
    const LayerCost& y = changed.meter.ledger().last_step.layers[i];
    if (base.profile.layers()[i].name == layer) {
      EXPECT_LT(y.total().energy_j, x.total().energy_j);
      continue;
    }
    EXPECT_EQ(x.total().energy_j, y.total().energy_j) << base.profile.layers()[i].name;
    EXPECT_EQ(x.total().latency_s, y.total().latency_s) << base.profile.layers()[i].name;
  }
}

TEST(CostMeter, ASkippedLayerCostsNothing) {
  // Executions fed directly, as a gated block that skips a layer would report them: all layers, then all but one.
  const ModelProfile profile = [] {
    auto model = create_model("resnet20", kInput);
    return profile_model(*model, kInput);
  }();
  const LayerPrecision p = LayerPrecision::uniform(Precision::fw_bw(6, 8));
  const std::string skipped = "stage3.1.conv2";
  CostMeter all(profile, hardware()), without(profile, hardware());
  for (const auto& l : profile.layers()) {
    all.on_layer(LayerExecution{l.name, l.kind, l.macs_per_sample, kBatch, p, true});
    if (l.name != skipped) without.on_layer(LayerExecution{l.name, l.kind, l.macs_per_sample, kBatch, p, true});
  }
  all.end_step(kBatch);
  without.end_step(kBatch);
  const CostTotals a = summarize(all.ledger().run, profile), b = summarize(without.ledger().run, profile);
  const LayerCost share = layer_cost(profile.layers()[profile.index_of(skipped)],
                                     profile.layers()[profile.index_of(skipped)].macs_per_sample, kBatch, p, hardware());
  for (int pass = 0; pass < kPassCount; ++pass) {
    EXPECT_EQ(a.passes[pass].bit_macs - b.passes[pass].bit_macs, share.passes[pass].bit_macs);
    EXPECT_NEAR(a.passes[pass].energy_j - b.passes[pass].energy_j, share.passes[pass].energy_j, 1e-15);
  }
  EXPECT_EQ(without.ledger().run.layers[profile.index_of(skipped)].total().bit_macs, 0);
  // cp is still against the whole network's FP32 cost: skipping lowers it.
  EXPECT_LT(b.cp(), a.cp());
}

TEST(CostMeter, PerSamplePrecisionCostsTheSumOfItsSamples) {
  Fixture f;
  const std::string layer = "stage1.1.conv1";
  PrecisionPlan plan = PrecisionPlan::uniform(Precision::fw_bw(8, 8));
  plan.set_layer(layer, LayerPrecision::per_sample(4, {2, 4, 8, 0}, {6, 8, 8, 16}));
  f.step(plan);
  const double macs = static_cast<double>(f.profile.layers()[f.profile.index_of(layer)].macs_per_sample);
  const LayerCost& c = f.last_step_layer(layer);
  EXPECT_EQ(c.passes[0].bit_macs, macs * 4 * (2 + 4 + 8 + 32));  // a full-precision sample counts 32 bits
  EXPECT_EQ(c.passes[1].bit_macs, macs * 4 * (6 + 8 + 8 + 16));
  EXPECT_EQ(c.passes[2].bit_macs, macs * (2 * 6 + 4 * 8 + 8 * 8 + 32 * 16));
  EXPECT_EQ(c.passes[0].bitbrick_ops, macs * 2 * (1 + 2 + 4 + 16));
}

TEST(CostMeter, EvaluationForwardsAreNotTrainingCost) {
  Fixture f;
  f.model->eval();
  torch::NoGradGuard no_grad;
  f.model->forward(torch::randn({kBatch, 3, 8, 8}), PrecisionPlan::uniform(Precision::fw_bw(8, 8)));
  f.meter.end_step(0);
  EXPECT_EQ(summarize(f.meter.ledger().run, f.profile).total().bit_macs, 0);
}

TEST(CostMeter, ReferencesCostTheSameSamplesAtTheirPrecision) {
  Fixture f;
  const PrecisionPlan fw8bw8 = make_static_plan(*f.model, Precision::fw_bw(8, 8), QuantizationPolicy{});
  f.meter.add_reference("fp32", PrecisionPlan::uniform(Precision::full()));
  f.meter.add_reference("fw8bw8", fw8bw8);
  f.step(fw8bw8);
  f.step(fw8bw8);
  const CostTotals run = summarize(f.meter.ledger().run, f.profile);
  const CostTotals fp32 = summarize(f.meter.reference("fp32").run, f.profile);
  const CostTotals ref8 = summarize(f.meter.reference("fw8bw8").run, f.profile);
  EXPECT_EQ(run.samples, 2 * kBatch);
  EXPECT_EQ(fp32.samples, 2 * kBatch);
  EXPECT_DOUBLE_EQ(fp32.cp(), 100.0);
  // A static FW-8/BW-8 run costs exactly its FW-8/BW-8 reference.
  for (int pass = 0; pass < kPassCount; ++pass) {
    EXPECT_EQ(run.passes[pass].bit_macs, ref8.passes[pass].bit_macs);
    EXPECT_DOUBLE_EQ(run.passes[pass].energy_j, ref8.passes[pass].energy_j);
    EXPECT_DOUBLE_EQ(run.passes[pass].latency_s, ref8.passes[pass].latency_s);
  }
  // The classifier stays FP32 by policy, so cp is just above 6.25%; the blocks alone are exactly 6.25%.
  EXPECT_GT(run.cp(), 6.25);
  EXPECT_LT(run.cp(), 6.3);
  EXPECT_DOUBLE_EQ(run.cp_blocks(), 6.25);
  EXPECT_LT(run.total().energy_j, fp32.total().energy_j);
  EXPECT_LT(run.total().latency_s, fp32.total().latency_s);
  EXPECT_THROW(f.meter.reference("fw4bw4"), Error);
  EXPECT_THROW(f.meter.add_reference("fp32", PrecisionPlan{}), Error);
}

TEST(CostMeter, StepsAddUpToEpochsAndTheRun) {
  Fixture f;
  const PrecisionPlan plan = PrecisionPlan::uniform(Precision::fw_bw(8, 8));
  f.step(plan);
  f.step(plan);
  f.meter.end_epoch();
  f.step(plan);
  const CostLedger& l = f.meter.ledger();
  const double step = summarize(l.last_step, f.profile).total().bit_macs;
  EXPECT_GT(step, 0);
  EXPECT_EQ(summarize(l.last_epoch, f.profile).total().bit_macs, 2 * step);
  EXPECT_EQ(summarize(l.epoch, f.profile).total().bit_macs, step);
  EXPECT_EQ(summarize(l.run, f.profile).total().bit_macs, 3 * step);
  EXPECT_EQ(l.run.samples, 3 * kBatch);
  // A static step is what static_step_cost predicts.
  const CostTotals predicted = summarize(static_step_cost(f.profile, plan, kBatch, f.meter.hardware()), f.profile);
  EXPECT_EQ(predicted.total().bit_macs, step);
  EXPECT_DOUBLE_EQ(predicted.total().energy_j, summarize(l.last_step, f.profile).total().energy_j);
}

TEST(CostMeter, StateRestoresExactlyAndRefusesAnotherModel) {
  Fixture f;
  f.meter.add_reference("fp32", PrecisionPlan::uniform(Precision::full()));
  f.step(PrecisionPlan::uniform(Precision::fw_bw(4, 8)));
  f.meter.end_epoch();
  f.step(PrecisionPlan::uniform(Precision::fw_bw(6, 8)));
  // Through text, as in a checkpoint.
  const nlohmann::json state = nlohmann::json::parse(f.meter.state().dump());
  CostMeter restored(f.profile, hardware());
  restored.add_reference("fp32", PrecisionPlan::uniform(Precision::full()));
  restored.restore(state, "test.ckpt");
  EXPECT_EQ(restored.state(), f.meter.state());
  const CostTotals a = summarize(f.meter.ledger().run, f.profile), b = summarize(restored.ledger().run, f.profile);
  EXPECT_EQ(a.total().energy_j, b.total().energy_j);
  EXPECT_EQ(a.paper_bit_macs, b.paper_bit_macs);

  const ModelProfile other = [] {
    auto m = create_model("resnet8", kInput);
    return profile_model(*m, kInput);
  }();
  CostMeter wrong(other, hardware());
  wrong.add_reference("fp32", PrecisionPlan::uniform(Precision::full()));
  EXPECT_CONTAINS(test_support::error_of([&] { wrong.restore(state, "test.ckpt"); }), "test.ckpt");
  CostMeter no_reference(f.profile, hardware());
  no_reference.add_reference("fw8bw8", PrecisionPlan::uniform(Precision::fw_bw(8, 8)));
  EXPECT_CONTAINS(test_support::error_of([&] { no_reference.restore(state, "x.ckpt"); }), "no reference 'fw8bw8'");
}

TEST(CostMeter, UnknownLayersAreRefused) {
  Fixture f;
  const LayerPrecision p = LayerPrecision::uniform(Precision::full());
  EXPECT_CONTAINS(test_support::error_of([&] {
                    f.meter.on_layer(LayerExecution{"decoder.0.attn", LayerKind::Attention, 10, 1, p, true});
                  }),
                  "decoder.0.attn");
}
