// The device path of quantization on a GPU (issue 15; scripts/gpu_check.sh runs these on a machine with one): the
// CUDA kernels equal the CPU quantizer bit for bit, the running range stays on the device, and a quantized
// training step of a static plan never synchronises with the host. Skipped in builds without the CUDA kernels
// or without a visible GPU; tests/test_device_quantize.cpp checks the same data flow on the CPU everywhere.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "fractrain/models/gated_block.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/models/resnet.h"
#include "fractrain/precision/gating_cost.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/quant/device_quantize.h"
#include "fractrain/quant/fake_quantize.h"
#include "fractrain/quant/quant_math.h"
#include "fractrain/util/host_sync_check.h"
#include "run_test_support.h"
#include "test_support.h"


using namespace fractrain;

namespace {

#define REQUIRE_GPU()                                                                                  \
  if (!device_quant::has_cuda_kernels()) GTEST_SKIP() << "this build has no CUDA kernels";          \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU visible"

void expect_bitwise(const at::Tensor& gpu, const at::Tensor& cpu, const std::string& what) {
  const at::Tensor a = gpu.cpu();
  ASSERT_EQ(a.sizes(), cpu.sizes()) << what;
  EXPECT_TRUE(torch::equal(a.view(at::kInt), cpu.view(at::kInt)))
      << what << ": max |difference| " << (a - cpu).abs().max().item<float>();
}

}  // namespace

TEST(GpuQuantize, KernelsEqualTheCpuQuantizerBitForBit) {
  REQUIRE_GPU();
  torch::manual_seed(1);
  const at::Tensor x = torch::randn({6, 1037}) * 3;  // rows that do not end on a 64-element noise tile
  const at::Tensor gx = x.cuda();
  const QuantRange range = tensor_range(x);
  const at::Tensor device_range = device_quant::range_of(gx);
  EXPECT_EQ(device_range[0].item<float>(), range.lo);
  EXPECT_EQ(device_range[1].item<float>(), range.hi);
  for (bool snap : {false, true}) {
    QuantizeOptions options;
    options.snap_zero_point = snap;
    options.rounding = Rounding::Stochastic;
    options.noise = PhiloxStream{9, mix_stream(2, 5)};
    options.noise_first_index = 333;
    const std::vector<int> widths = {0, 2, 4, 6, 8, 3};
    device_quant::RowQuantization q = device_quant::RowQuantization::over(device_range);
    q.rows = 6;
    q.row_bits = device_quant::widths_tensor(widths, gx);
    q.snap_zero_point = snap;
    q.stochastic = true;
    q.noise_key = options.noise.key;
    q.noise_stream = device_quant::stream_tensor(options.noise, gx);
    q.noise_first_index = options.noise_first_index;
    at::Tensor out = torch::empty_like(gx);
    expect_bitwise(device_quant::quantize_rows_out(gx, q, out), fake_quantize_rows(x, widths, range, options),
                   "per-row widths, stochastic, snap " + std::to_string(snap));
    options.rounding = Rounding::Nearest;
    expect_bitwise(fake_quantize_per_channel(gx, 4, options), fake_quantize_per_channel(x, 4, options),
                   "per output channel, snap " + std::to_string(snap));
    expect_bitwise(fake_quantize_per_input_channel(gx.view({3, 2, 1037}), 5, options),
                   fake_quantize_per_input_channel(x.view({3, 2, 1037}), 5, options),
                   "per input channel, snap " + std::to_string(snap));
  }
}

TEST(GpuQuantize, TheRunningRangeIsUpdatedOnTheDevice) {
  REQUIRE_GPU();
  at::Tensor lo = torch::zeros({1}, torch::kCUDA), span = torch::zeros({1}, torch::kCUDA),
             seen = torch::zeros({1}, torch::kCUDA);
  float host_lo = 0, host_span = 0, host_seen = 0;
  for (int step = 0; step < 3; ++step) {
    const at::Tensor batch = torch::randn({4000}) * (step + 1);
    const QuantRange r = tensor_range(batch);
    const at::Tensor on_device = batch.cuda();
    {
      HostSyncIsAnError strict;
      device_quant::update_running_range(lo, span, seen, device_quant::range_of(on_device), 0.9f);
    }
    quant_math::update_running_range(&host_lo, &host_span, &host_seen, r.lo, r.hi, 0.9f);
    EXPECT_EQ(lo.item<float>(), host_lo);
    EXPECT_EQ(span.item<float>(), host_span);
  }
}

// A static FW-8/BW-8 training step (forward, backward, optimizer step) of a ResNet on the GPU: the ranges, the
// running statistics and the noise stream stay on the device, so nothing in the step may synchronise.
TEST(GpuTraining, AStaticQuantizedStepNeverSynchronisesWithTheHost) {
  REQUIRE_GPU();
  torch::manual_seed(2);
  auto model = create_model("resnet8", ModelInputSpec{1, 28, 28, 10});
  model->to(torch::kCUDA);
  model->train();
  const PrecisionPlan plan = make_static_plan(*model, Precision::fw_bw(8, 8), {});
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  const at::Tensor x = torch::randn({32, 1, 28, 28}).cuda(), labels = torch::randint(0, 10, {32}, torch::kLong).cuda();
  auto step = [&] {
    optimizer.zero_grad();
    at::Tensor loss = torch::cross_entropy_loss(model->forward(x, plan), labels);
    loss.backward();
    optimizer.step();
    return loss.detach();
  };
  step();  // warm-up: cuDNN's algorithm search and the allocator's first blocks may synchronise
  at::Tensor loss;
  {
    HostSyncIsAnError strict;
    loss = step();
  }
  EXPECT_TRUE(torch::isfinite(loss).item<bool>());
}

// DFQ's masked execution of a block, forward and backward, with the decisions on the device: the widths, the
// ranges and BatchNorm statistics over the running samples, and the option gradient never leave it. (The
// decisions' host copy and the option tables are made before the strict part: the cost meter still counts on the
// host, docs/gpu.md.)
TEST(GpuTraining, AMaskedDfqBlockNeverSynchronisesWithTheHost) {
  REQUIRE_GPU();
  torch::manual_seed(3);
  auto block = std::make_shared<BasicBlock>(8, 8, 1);
  block->to(torch::kCUDA);
  block->train();
  const OptionSet options = OptionSet::parse("cifar-release", 0);
  const OptionTables tables = OptionTables::build(options, torch::Device(torch::kCUDA));
  GatedBlockRun run{options, 1, false};
  run.tables = &tables;
  auto decide = [&] {
    const at::Tensor p = torch::softmax(torch::randn({16, static_cast<int64_t>(options.size())}), 1);
    return straight_through_decision(p.cuda().requires_grad_());
  };
  const at::Tensor x = torch::rand({16, 8, 8, 8}).cuda().requires_grad_();
  auto step = [&](const GateDecision& decision) {
    const at::Tensor y = run_gated_block_masked(*block, x, decision, run);
    (y * y).sum().backward();
    return y.detach();
  };
  step(decide());  // warm-up
  const GateDecision decision = decide();
  at::Tensor y;
  {
    HostSyncIsAnError strict;
    y = step(decision);
  }
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(decision.probabilities.grad()).all().item<bool>());
}

// A DFQ training step of a gated ResNet in masked execution: the gates, every block at each sample's option, the
// gates' cost term, backward and SGD, with the decisions on the device throughout. (No cost meter: it still counts
// executions on the host, docs/gpu.md.)
TEST(GpuTraining, AMaskedDfqStepNeverSynchronisesWithTheHost) {
  REQUIRE_GPU();
  torch::manual_seed(4);
  const OptionSet options = OptionSet::parse("cifar-release", 0);
  auto model = create_gated_model("resnet8", ModelInputSpec{1, 28, 28, 10}, options, GateExecution::Masked);
  model->to(torch::kCUDA);
  model->train();
  const PrecisionPlan plan = PrecisionPlan::uniform(Precision::fw_bw(8, 8));
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  const at::Tensor x = torch::rand({32, 1, 28, 28}).cuda(), labels = torch::randint(0, 10, {32}, torch::kLong).cuda();
  auto step = [&] {
    optimizer.zero_grad();
    const ForwardResult result = model->run(x, plan);
    const at::Tensor loss =
        torch::cross_entropy_loss(result.output, labels) + 1e-3 * gating_cost(result.decisions, options);
    loss.backward();
    optimizer.step();
    return loss.detach();
  };
  step();  // warm-up: the option tables and constants are made on the device, cuDNN searches
  at::Tensor loss;
  {
    HostSyncIsAnError strict;
    loss = step();
  }
  EXPECT_TRUE(torch::isfinite(loss).item<bool>());
}

// Deferred host reads on the GPU: a training step of every method queues its work and returns without waiting for
// the device. FW-8/BW-8, auto PFQ (a stage change within the run), and DFQ and FracTrain in masked execution, whose
// decisions, option counts, batch cp and cost-term sign stay on the device. Every step after the first runs with
// host synchronisation as an error (TrainOptions::forbid_host_sync); the reads at log, trace, indicator, evaluation
// and checkpoint points are allowed.
TEST(GpuTraining, DeferredTrainerStepsNeverSynchroniseWithTheHost) {
  REQUIRE_GPU();
  ASSERT_FASHION_MNIST_INSTALLED();
  for (const std::string mode : {"static", "pfq-auto", "dfq", "fractrain"}) {
    test_support::TempDir temp("fractrain_gpu_deferred_" + mode);
    RunConfig c = test_support::small_run(temp.str(), "resnet8", 512, 32);
    c.precision.mode = precision_mode_names().parse(mode, "precision.mode");
    c.precision.fw = 8;
    c.precision.bw = 8;
    c.precision.pfq_window_iterations = 2;
    c.precision.pfq_eps = 10.0;  // wide: PFQ and FracTrain change stage within the run
    c.dfq.execution = GateExecution::Masked;
    c.dfq.target_cp = 2.5;
    c.dfq.stages = 2;
    c.train.device = "cuda";
    c.train.iterations = 12;
    c.train.eval_every = 6;
    c.train.log_every = 4;
    TrainOptions options = test_support::quiet();
    options.forbid_host_sync = true;
    const nlohmann::json s = train_run(c, options);
    EXPECT_EQ(s["steps"], 12) << mode;
    EXPECT_GT(s["final_test_accuracy"].get<double>(), 0.0) << mode;
    if (mode == "pfq-auto" || mode == "fractrain") {
      EXPECT_GE(s["turning_points"].size(), 1u) << mode;
    }
  }
}

namespace {

// cuDNN's fastest algorithms may differ from run to run (and its weight gradients add up in any order): the runs
// that must agree bit for bit take deterministic ones, restored afterwards.
class DeterministicCudnn {
 public:
  DeterministicCudnn()
      : deterministic_(at::globalContext().deterministicCuDNN()), benchmark_(at::globalContext().benchmarkCuDNN()) {
    at::globalContext().setDeterministicCuDNN(true);
    at::globalContext().setBenchmarkCuDNN(false);
  }
  ~DeterministicCudnn() {
    at::globalContext().setDeterministicCuDNN(deterministic_);
    at::globalContext().setBenchmarkCuDNN(benchmark_);
  }

 private:
  bool deterministic_, benchmark_;
};

RunConfig graphed_run(const std::string& dir, const std::string& mode, bool graphs) {
  RunConfig c = test_support::small_run(dir, "resnet8", 512, 32);
  c.precision.mode = precision_mode_names().parse(mode, "precision.mode");
  c.precision.fw = 8;
  c.precision.bw = 8;
  c.precision.pfq_window_iterations = 2;
  c.precision.pfq_eps = 10.0;  // PFQ and FracTrain change stage within the run: a second capture
  c.dfq.execution = GateExecution::Masked;
  c.dfq.target_cp = 2.5;
  c.dfq.stages = 2;
  c.train.device = "cuda";
  c.train.iterations = 20;  // 16 per epoch (512 / 32): replays, the stage's warm-up and a new epoch
  c.train.eval_every = 10;
  c.train.log_every = 5;
  c.train.cuda_graphs = graphs;
  return c;
}

}  // namespace

// train.cuda_graphs: the replayed steps run the eager steps' kernels on the same data with the same noise (the
// step counter on the device), so a static run and an auto-PFQ run (one stage change: a second capture) end with
// the eager run's weights, and the meter counts the same cost.
TEST(GpuTraining, AGraphedRunEqualsTheEagerRun) {
  REQUIRE_GPU();
  ASSERT_FASHION_MNIST_INSTALLED();
  const DeterministicCudnn deterministic;
  for (const std::string mode : {"static", "pfq-auto"}) {
    test_support::TempDir eager_dir("fractrain_gpu_eager_" + mode), graphed_dir("fractrain_gpu_graphed_" + mode);
    const RunConfig eager = graphed_run(eager_dir.str(), mode, false);
    const RunConfig graphed = graphed_run(graphed_dir.str(), mode, true);
    const nlohmann::json a = train_run(eager, test_support::quiet());
    const nlohmann::json b = train_run(graphed, test_support::quiet());
    EXPECT_EQ(b["steps"], 20) << mode;
    EXPECT_EQ(b["cost"], a["cost"]) << mode;
    EXPECT_EQ(b["turning_points"], a["turning_points"]) << mode;
    const auto wa = test_support::final_weights(eager), wb = test_support::final_weights(graphed);
    ASSERT_EQ(wa.size(), wb.size());
    for (const auto& [name, tensor] : wa)
      EXPECT_TRUE(torch::equal(tensor, wb.at(name)))
          << mode << " " << name << ": max difference " << (tensor - wb.at(name)).abs().max().item<double>();
  }
}

// DFQ and FracTrain (masked execution) with graphs: the gates' decisions, the meter's option counts and the cost
// term's sign are graph outputs, re-counted after each replay; the run learns and its gate statistics are the
// eager run's.
TEST(GpuTraining, GraphedDfqRunsTrainAsEagerOnes) {
  REQUIRE_GPU();
  ASSERT_FASHION_MNIST_INSTALLED();
  const DeterministicCudnn deterministic;
  for (const std::string mode : {"dfq", "fractrain"}) {
    test_support::TempDir eager_dir("fractrain_gpu_eager_" + mode), graphed_dir("fractrain_gpu_graphed_" + mode);
    const nlohmann::json a = train_run(graphed_run(eager_dir.str(), mode, false), test_support::quiet());
    const nlohmann::json b = train_run(graphed_run(graphed_dir.str(), mode, true), test_support::quiet());
    EXPECT_EQ(b["steps"], 20) << mode;
    EXPECT_GT(b["final_test_accuracy"].get<double>(), 0.15) << mode;  // chance: 0.1
    EXPECT_EQ(b["cost"], a["cost"]) << mode;
    EXPECT_EQ(test_support::read_metrics(graphed_dir.str(), "cp_trace"),
              test_support::read_metrics(eager_dir.str(), "cp_trace"))
        << mode;
  }
}

