// DFQ without host reads inside a step (train.host_reads = deferred with dfq.execution = masked): the gates'
// decisions stay on the device, the cost meter keeps how many samples ran each option as device counts, and the
// controller computes the batch's cp, the sign of its cost term and its windows' counts there; everything is read
// at the trainer's read points. On the CPU the same code runs, so these tests check what a GPU run would do: the
// meter's ledgers, the controller's term and windows, and a whole run equal those of per-step reads bit for bit.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/models/gated_model.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/precision/dynamic_controller.h"
#include "run_test_support.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;
using test_support::final_weights;
using test_support::quiet;
using test_support::read_metrics;

namespace {

const ModelInputSpec kInput{1, 12, 12, 10};

// A gated ResNet-8 in masked execution with a cost meter attached; `reads_deferred` as the trainer sets it.
struct MeteredModel {
  std::shared_ptr<GatedResNet> model;
  std::unique_ptr<CostMeter> meter;

  MeteredModel(GateExecution execution, bool reads_deferred) {
    torch::manual_seed(1);
    model = std::make_shared<GatedResNet>(OptionSet::parse("skip,3/6,4/8,6/12", 4), execution,
                                          cifar_resnet_layout(8), kInput);
    model->train();
    // An untrained gate picks one option for every sample; wider weights make its choices vary per sample.
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())
      if (p.key().rfind("gate.", 0) == 0) p.value().normal_(0.0, 1.5);
    meter = std::make_unique<CostMeter>(profile_model(*model, kInput), builtin_hardware_model());
    meter->add_reference("fp32", PrecisionPlan::uniform(Precision::full()));
    meter->set_reads_deferred(reads_deferred);
    model->set_cost_observer(meter.get());
  }
  // The most distinct options the samples of one block chose in `forward`.
  static int64_t distinct_choices(const ForwardResult& forward) {
    int64_t most = 0;
    for (const auto& d : forward.decisions) most = std::max(most, std::get<0>(at::_unique(d.options)).numel());
    return most;
  }
  ForwardResult step(int seed) {
    torch::manual_seed(seed);
    // Samples of different brightness and contrast, so that the gates see different inputs.
    const at::Tensor images = torch::rand({6, 1, 12, 12}).pow(torch::linspace(0.3, 3.0, 6).view({6, 1, 1, 1})) *
                              torch::linspace(3.0, 0.5, 6).view({6, 1, 1, 1});
    return model->run(images, PrecisionPlan::uniform(Precision::fw_bw(8, 8)));
  }
};

}  // namespace

// The meter's cp of the step in progress computed on the device equals the host's bit for bit, and a step's cost
// counted from the device counts equals mixed execution's, which reads the decisions on the host.
TEST(DeferredGateReads, TheMetersDeviceCpAndCountsEqualTheHostsCount) {
  MeteredModel masked(GateExecution::Masked, false), mixed(GateExecution::Mixed, false);
  for (int seed = 2; seed < 5; ++seed) {
    EXPECT_GE(MeteredModel::distinct_choices(masked.step(seed)), 2) << "seed " << seed;
    mixed.step(seed);
    const CostMeter::DeviceCp on_device = masked.meter->step_in_progress_on_device(6, c10::Device(c10::kCPU));
    const CostTotals host = masked.meter->step_in_progress(6);
    EXPECT_EQ(on_device.cp.item<double>(), host.cp()) << "seed " << seed;
    EXPECT_EQ(on_device.cp_blocks.item<double>(), host.cp_blocks()) << "seed " << seed;
    EXPECT_GT(host.cp_blocks(), 0.0);
    EXPECT_EQ(host.cp_blocks(), mixed.meter->step_in_progress(6).cp_blocks()) << "seed " << seed;
    masked.meter->end_step(6);
    mixed.meter->end_step(6);
  }
  EXPECT_EQ(masked.meter->state(), mixed.meter->state());
}

// With deferred reads the steps wait, closed in order at read_pending(), epochs included; until then the ledgers
// refuse to answer rather than give a stale total.
TEST(DeferredGateReads, TheMeterClosesUnreadStepsAtTheReadInOrder) {
  MeteredModel deferred(GateExecution::Masked, true), per_step(GateExecution::Masked, false);
  for (int seed = 2; seed < 6; ++seed) {
    deferred.step(seed);
    per_step.step(seed);
    deferred.meter->end_step(6);
    per_step.meter->end_step(6);
    if (seed == 3) {
      deferred.meter->end_epoch();
      per_step.meter->end_epoch();
    }
  }
  EXPECT_TRUE(deferred.meter->has_pending());
  EXPECT_CONTAINS(error_of([&] { deferred.meter->ledger(); }), "read_pending");
  EXPECT_CONTAINS(error_of([&] { deferred.meter->state(); }), "4 steps' option counts are unread");
  deferred.meter->read_pending();
  EXPECT_FALSE(deferred.meter->has_pending());
  EXPECT_EQ(deferred.meter->state(), per_step.meter->state());
  EXPECT_EQ(deferred.meter->ledger().last_epoch.samples, 12);
  EXPECT_EQ(deferred.meter->ledger().epoch.samples, 12);
}

// The controller on the device: the same cost term (value and gradient) as on the host for batches below, above
// and inside the dead band of its target, and after read_pending() the same windows and state.
TEST(DeferredGateReads, TheControllersTermAndWindowsEqualTheHosts) {
  MeteredModel model(GateExecution::Masked, false);
  struct Batch {
    ForwardResult forward;
    CostTotals host;
    CostMeter::DeviceCp device;
  };
  std::vector<Batch> batches;
  std::vector<double> cps;
  for (int seed = 2; seed < 9; ++seed) {
    Batch b{model.step(seed), {}, {}};
    b.host = model.meter->step_in_progress(6);
    b.device = model.meter->step_in_progress_on_device(6, c10::Device(c10::kCPU));
    model.meter->end_step(6);
    cps.push_back(b.host.cp_blocks());
    batches.push_back(std::move(b));
  }
  // The target at the median batch's cp: that batch falls in the dead band, the others on either side.
  std::sort(cps.begin(), cps.end());
  ASSERT_LT(cps.front(), cps.back());
  CostSteering steering;
  steering.beta = 0.01;
  steering.dead_band = 1e-9;
  const OptionSet options = model.model->option_set();
  const std::vector<std::string> blocks = model.model->gated_blocks();
  const PrecisionPlan plan = PrecisionPlan::uniform(Precision::fw_bw(8, 8));
  auto host = DynamicController::dfq(options, plan, cps[cps.size() / 2], steering, blocks);
  auto device = DynamicController::dfq(options, plan, cps[cps.size() / 2], steering, blocks);
  int signs_seen = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    const Batch& b = batches[i];
    StepCost on_device;
    on_device.device_cp = b.device.cp;
    on_device.device_cp_blocks = b.device.cp_blocks;
    const at::Tensor term_host = host->observe_step(b.forward.decisions, StepCost{b.host.cp(), b.host.cp_blocks()});
    const at::Tensor term_device = device->observe_step(b.forward.decisions, on_device);
    ASSERT_TRUE(term_device.defined());
    const double sign = host->cost_sign(b.host.cp_blocks());
    signs_seen |= sign < 0 ? 1 : sign > 0 ? 2 : 4;
    if (!term_host.defined()) {  // the dead band: no term on the host, a term of value 0 on the device
      EXPECT_EQ(sign, 0.0);
      EXPECT_EQ(term_device.item<float>(), 0.0f) << "batch " << i;
      continue;
    }
    EXPECT_TRUE(torch::equal(term_host, term_device)) << "batch " << i;
    const at::Tensor mask = b.forward.decisions.front().mask;
    const at::Tensor g_host = torch::autograd::grad({term_host}, {mask}, {}, true)[0];
    const at::Tensor g_device = torch::autograd::grad({term_device}, {mask}, {}, true)[0];
    EXPECT_TRUE(torch::equal(g_host, g_device)) << "batch " << i;
  }
  EXPECT_EQ(signs_seen, 7) << "signs seen: 1 below the target, 2 above, 4 in the dead band";
  EXPECT_CONTAINS(error_of([&] { device->state(); }), "call read_pending() first");
  device->read_pending();
  EXPECT_EQ(device->state(), host->state());
  EXPECT_EQ(device->evaluation_report().metrics, host->evaluation_report().metrics);
}

namespace {

RunConfig gated_run(const std::string& dir, PrecisionMode mode, const std::string& reads) {
  RunConfig c = test_support::small_run(dir, "resnet8", 192, 16);
  c.precision.mode = mode;
  c.dfq.execution = GateExecution::Masked;
  c.dfq.target_cp = 2.5;
  c.dfq.beta = 3e-3;
  c.dfq.stages = 2;
  c.precision.pfq_window_iterations = 2;
  c.precision.pfq_eps = 10.0;  // FracTrain's indicator fires once it has its 5 windows: at step 10
  c.train.iterations = 14;     // not a multiple of the read points: the last ones come at the end
  c.train.eval_every = 6;
  c.train.log_every = 4;
  c.train.host_reads = reads;
  return c;
}

void expect_same_run(PrecisionMode mode, const char* name) {
  test_support::TempDir per_step_dir(std::string("fractrain_gate_reads_every_") + name),
      deferred_dir(std::string("fractrain_gate_reads_deferred_") + name);
  const RunConfig every = gated_run(per_step_dir.str(), mode, "every_step");
  const RunConfig deferred = gated_run(deferred_dir.str(), mode, "deferred");
  const nlohmann::json a = train_run(every, quiet()), b = train_run(deferred, quiet());

  EXPECT_EQ(b["cost"], a["cost"]);
  EXPECT_EQ(b["turning_points"], a["turning_points"]);
  if (mode == PrecisionMode::FracTrain) {
    EXPECT_GE(a["turning_points"].size(), 1u);  // a stage change, closed from the meter's read totals
  }
  EXPECT_EQ(b["final_test_accuracy"], a["final_test_accuracy"]);
  const auto wa = final_weights(every), wb = final_weights(deferred);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [param, tensor] : wa) EXPECT_TRUE(torch::equal(tensor, wb.at(param))) << param;

  // The gates' statistics and the cost in every evaluation record and every trace record.
  const auto rows_a = read_metrics(per_step_dir.str()), rows_b = read_metrics(deferred_dir.str());
  ASSERT_EQ(rows_a.size(), rows_b.size());
  ASSERT_GE(rows_a.size(), 3u);
  for (size_t i = 0; i < rows_a.size(); ++i)
    for (const char* key : {"window_cp", "window_cp_blocks", "target_cp", "gate_selection", "cp", "bit_macs", "energy_j"}) {
      if (!rows_a[i].contains(key)) continue;
      EXPECT_EQ(rows_b[i][key], rows_a[i][key]) << "row " << i << " " << key;
    }
  const auto trace_a = read_metrics(per_step_dir.str(), "cp_trace"), trace_b = read_metrics(deferred_dir.str(), "cp_trace");
  ASSERT_GE(trace_a.size(), 3u);
  EXPECT_EQ(trace_b, trace_a);
}

}  // namespace

TEST(DeferredGateReads, ADfqRunTrainsAsWithPerStepReads) {
  ASSERT_FASHION_MNIST_INSTALLED();
  expect_same_run(PrecisionMode::Dfq, "dfq");
}

TEST(DeferredGateReads, AFracTrainRunTrainsAsWithPerStepReads) {
  ASSERT_FASHION_MNIST_INSTALLED();
  expect_same_run(PrecisionMode::FracTrain, "fractrain");
}
