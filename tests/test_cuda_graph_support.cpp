// train.cuda_graphs (train/graphed_step.h): what can be checked without a GPU. The settings it cannot work with are
// refused before a run starts, naming the key to change; and what a captured step leaves on the host (the cost
// meter's charge, the DFQ controller's observation) is taken back at capture and repeated after each replay, so
// that replays count as the eager steps would. A replay itself needs a GPU (GpuTraining.* in test_gpu_quantize.cpp).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/models/gated_model.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/precision/dynamic_controller.h"
#include "fractrain/precision/static_controller.h"
#include "fractrain/train/graphed_step.h"
#include "fractrain/train/graphed_training.h"
#include "test_support.h"

using namespace fractrain;
using test_support::error_of;

TEST(CudaGraphs, SettingsThatCannotWorkAreRefusedWithTheKeyToChange) {
  RunConfig c;
  c.train.cuda_graphs = true;
  const c10::Device cpu(c10::kCPU), cuda("cuda:0");
  EXPECT_CONTAINS(error_of([&] { check_cuda_graphs(c, cpu, false, true); }), "train.device = \"cuda\"");
  if (!GraphedStep::available()) {
    EXPECT_CONTAINS(error_of([&] { check_cuda_graphs(c, cuda, false, true); }), "no CUDA support");
    return;  // the other refusals come after this one
  }
  EXPECT_CONTAINS(error_of([&] { check_cuda_graphs(c, cuda, true, true); }), "one process");
  EXPECT_CONTAINS(error_of([&] { check_cuda_graphs(c, cuda, false, false); }), "train.host_reads");
  c.precision.execution = ExecutionMode::Integer;
  EXPECT_CONTAINS(error_of([&] { check_cuda_graphs(c, cuda, false, true); }), "precision.execution = \"simulated\"");
  c.precision.execution = ExecutionMode::Simulated;
  c.model.name = "transformer-lm";
  EXPECT_CONTAINS(error_of([&] { check_cuda_graphs(c, cuda, false, true); }), "model.dropout = 0");
  c.model.dropout = 0;
  check_cuda_graphs(c, cuda, false, true);  // no dropout: accepted
  c.model.name = "resnet20";
  c.precision.mode = PrecisionMode::Dfq;
  EXPECT_CONTAINS(error_of([&] { check_cuda_graphs(c, cuda, false, true); }), "dfq.execution = \"masked\"");
  c.dfq.execution = GateExecution::Masked;
  check_cuda_graphs(c, cuda, false, true);  // accepted
  c.train.cuda_graphs = false;
  check_cuda_graphs(c, cpu, false, false);  // off: nothing to check
}

// Which steps replay: full batches after the stage's 3 eager warm-up steps (or once its graph exists); partial
// batches eagerly; a new stage starts over and drops its graph.
TEST(CudaGraphs, FullBatchesReplayAfterEachStagesWarmUp) {
  ReplaySchedule schedule(32);
  bool captured = false;
  std::string ran;
  auto step = [&](int64_t samples, int stage) {
    const ReplaySchedule::Decision d = schedule.next(samples, stage, captured);
    if (d.new_stage) {
      captured = false;
      ran += '|';
    }
    if (d.replay) captured = true;
    ran += d.replay ? 'R' : 'e';
  };
  for (int i = 0; i < 5; ++i) step(32, 0);
  step(7, 0);   // an epoch's last, partial batch
  step(32, 0);  // replays: the graph is there
  for (int i = 0; i < 5; ++i) step(32, 1);
  EXPECT_EQ(ran, "|eeeRReR|eeeRR");
}

namespace {

struct GatedRun {
  std::shared_ptr<GatedResNet> model;
  std::unique_ptr<CostMeter> meter;
  std::unique_ptr<DynamicController> controller;

  GatedRun() {
    const ModelInputSpec input{1, 12, 12, 10};
    torch::manual_seed(1);
    model = std::make_shared<GatedResNet>(OptionSet::parse("skip,3/6,6/12", 4), GateExecution::Masked,
                                          cifar_resnet_layout(8), input);
    model->train();
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())  // varied choices per sample (an untrained gate picks one)
      if (p.key().rfind("gate.", 0) == 0) p.value().normal_(0.0, 1.5);
    meter = std::make_unique<CostMeter>(profile_model(*model, input), builtin_hardware_model());
    meter->set_reads_deferred(true);
    model->set_cost_observer(meter.get());
    controller = DynamicController::dfq(model->option_set(), PrecisionPlan::uniform(Precision::fw_bw(8, 8)), 3.0,
                                        CostSteering{}, model->gated_blocks());
  }
  // A step as the trainer runs it with deferred reads, up to the backward pass.
  void observe(const at::Tensor& images) {
    const ForwardResult forward = model->run(images, PrecisionPlan::uniform(Precision::fw_bw(8, 8)));
    const CostMeter::DeviceCp cp = meter->step_in_progress_on_device(images.size(0), c10::Device(c10::kCPU));
    StepCost cost;
    cost.device_cp = cp.cp;
    cost.device_cp_blocks = cp.cp_blocks;
    controller->observe_step(forward.decisions, cost);
  }
};

at::Tensor batch(int seed) {
  torch::manual_seed(seed);
  return torch::rand({6, 1, 12, 12}).pow(torch::linspace(0.3, 3.0, 6).view({6, 1, 1, 1}));
}

}  // namespace

// A "capture" here is an eager step whose record is taken back; its "replays" repeat the record, as the trainer
// does after each graph replay. They count as that step run as often, and the copies are the meter's and the
// controller's own: overwriting the captured tensors, as the next replay does, leaves the counted steps alone.
TEST(CudaGraphs, ACapturedStepsChargeAndObservationRepeatAfterEachReplay) {
  GatedRun captured, eager;
  const at::Tensor images = batch(3);
  captured.observe(images);
  const CostMeter::StepRecord record = captured.meter->take_step_in_progress();
  const std::function<void()> observation = captured.controller->take_captured_observation();
  ASSERT_TRUE(observation);
  ASSERT_FALSE(record.charges.empty());
  for (int replay = 0; replay < 3; ++replay) {
    captured.meter->charge(record);
    observation();
    captured.meter->end_step(6);
    eager.observe(images);
    eager.meter->end_step(6);
  }
  for (const auto& c : record.charges) c.counts.zero_();  // the next replay rewrites the graph's tensors
  captured.meter->read_pending();
  eager.meter->read_pending();
  captured.controller->read_pending();
  eager.controller->read_pending();
  EXPECT_EQ(captured.meter->state(), eager.meter->state());
  EXPECT_EQ(captured.controller->state(), eager.controller->state());
  EXPECT_EQ(captured.meter->ledger().run.samples, 18);
}

// A controller without per-step bookkeeping (static, PFQ) has nothing to repeat; DFQ's must have observed the
// captured step.
TEST(CudaGraphs, OnlyAControllerThatObservedTheStepRepeatsIt) {
  StaticController fixed(Precision::fw_bw(8, 8), PrecisionPlan::uniform(Precision::fw_bw(8, 8)));
  EXPECT_FALSE(fixed.take_captured_observation());
  GatedRun run;
  EXPECT_CONTAINS(error_of([&] { run.controller->take_captured_observation(); }), "no step was observed");
}
