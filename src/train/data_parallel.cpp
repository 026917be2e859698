#include "fractrain/train/data_parallel.h"

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include "fractrain/dist/range_agreement_over_ranks.h"
#include "fractrain/dist/timed_communicator.h"
#include "fractrain/nn/batch_norm.h"
#include "fractrain/precision/precision_mode.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

// One recorded layer execution as a row of int64: batch, act bits, grad bits, per-sample flag, then the act and
// grad widths of each sample (a uniform precision repeats its widths), padded to `samples`.
constexpr int64_t kHeader = 4;

at::Tensor encode(const std::vector<CostMeter::RecordedExecution>& executions, int64_t samples) {
  at::Tensor rows = at::zeros({static_cast<int64_t>(executions.size()), kHeader + 2 * samples}, at::kLong);
  auto r = rows.accessor<int64_t, 2>();
  for (size_t i = 0; i < executions.size(); ++i) {
    const auto& e = executions[i];
    if (e.batch > samples)
      throw Error(fmt::format("data parallel: layer {} ran {} samples, more than the {} of this rank's slice",
                              e.layer, e.batch, samples));
    const auto n = static_cast<int64_t>(i);
    r[n][0] = e.batch;
    r[n][1] = e.precision.act_bits();
    r[n][2] = e.precision.grad_bits();
    r[n][3] = e.precision.is_per_sample() ? 1 : 0;
    for (int64_t s = 0; s < e.batch; ++s) {
      const Precision p = e.precision.for_sample(s);
      r[n][kHeader + s] = p.act;
      r[n][kHeader + samples + s] = p.grad;
    }
  }
  return rows;
}

// The execution of the whole batch: rank slices in rank order. It stays uniform when every rank ran the layer
// uniformly at the same widths (static and PFQ runs), so it is counted exactly as one process counts it.
CostMeter::RecordedExecution merge(const CostMeter::RecordedExecution& local, const std::vector<at::Tensor>& ranks,
                                   int64_t row, int64_t samples) {
  CostMeter::RecordedExecution merged = local;
  merged.batch = 0;
  bool uniform = true;
  std::vector<int> act, grad;
  for (const at::Tensor& rows : ranks) {
    auto r = rows.accessor<int64_t, 2>();
    const int64_t batch = r[row][0];
    merged.batch += batch;
    uniform = uniform && r[row][3] == 0 && r[row][1] == local.precision.act_bits() &&
              r[row][2] == local.precision.grad_bits();
    for (int64_t s = 0; s < batch; ++s) {
      act.push_back(static_cast<int>(r[row][kHeader + s]));
      grad.push_back(static_cast<int>(r[row][kHeader + samples + s]));
    }
  }
  if (!uniform || local.precision.is_per_sample())
    merged.precision = LayerPrecision::per_sample(local.precision.weight_bits(), std::move(act), std::move(grad));
  return merged;
}

}  // namespace

void check_batch_splits_over_ranks(int64_t batch_size, int64_t ranks) {
  if (batch_size % ranks != 0)
    throw Error(fmt::format("train.batch_size = {} does not split over {} ranks: it is the global batch, so it must "
                            "be a multiple of the number of ranks (--nproc x --nnodes; e.g. {})",
                            batch_size, ranks, std::max<int64_t>(ranks, batch_size / ranks * ranks)));
}

DataParallel::DataParallel(std::shared_ptr<Communicator> communicator,
                           std::shared_ptr<Communicator> gradient_communicator, const RunConfig& config)
    : clock_(std::make_shared<CommunicationClock>()),
      communicator_(with_timing(communicator ? std::move(communicator) : make_single_process_communicator(), clock_)),
      gradient_communicator_(gradient_communicator ? with_timing(std::move(gradient_communicator), clock_) : nullptr),
      sync_ranges_(config.precision.sync_ranges),
      sync_batchnorm_(config.train.sync_batchnorm),
      local_batch_(config.train.batch_size / std::max(1, communicator_->world_size())) {
  gradient_options_.comm = parse_gradient_communication(config.train.grad_comm);
  // Buckets go out during backward only on a connection of their own (see the constructor's comment).
  gradient_options_.launch_from_hooks = gradient_communicator_ != nullptr;
  gradient_options_.seed = config.train.seed;
  check_batch_splits_over_ranks(config.train.batch_size, communicator_->world_size());
  if (communicator_->world_size() > 1 && is_gated(config.precision.mode) &&
      config.dfq.execution == GateExecution::Masked)
    throw Error("dfq.execution = \"masked\" runs in one process (its ranges and BatchNorm statistics over the "
                "running samples are not agreed across ranks): use dfq.execution = \"mixed\" with " +
                std::to_string(communicator_->world_size()) + " ranks");
}

void DataParallel::prepare(QuantizedModel& model, TrainingTask& task) {
  if (!active()) return;
  {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> state;
    for (const auto& p : model.parameters()) state.push_back(p.detach());
    for (const auto& b : model.buffers()) state.push_back(b.detach());
    communicator_->broadcast(state, 0, "rank 0's parameters and buffers");
  }
  // Every rank's slice of a batch: rank r takes rows [r B / N, (r + 1) B / N).
  const int64_t world = world_size(), rank_index = rank();
  task.shard_training_batches(BatchShard{rank_index, world});
  QuantizerSettings settings = model.quantizer_settings();
  if (sync_ranges_) settings.range_agreement = make_range_agreement_over_ranks(communicator_);
  // The noise of a quantized gradient continues the whole batch's stream at this rank's first sample.
  settings.first_sample = rank_index * local_batch_;
  model.set_quantizer_settings(settings);
  if (sync_batchnorm_) set_batch_norm_communicator(model, communicator_);
  std::vector<at::Tensor> parameters = model.parameters();
  gradients_ = std::make_unique<GradientSynchronizer>(
      gradient_communicator_ ? gradient_communicator_ : communicator_, parameters, gradient_options_);
}

void DataParallel::begin_backward(int backward_bits, uint64_t step) {
  if (gradients_) gradients_->begin_step(backward_bits, step);
}

void DataParallel::average_gradients(int backward_bits, uint64_t step) {
  if (gradients_) gradients_->finish_step(backward_bits, step);
}

int64_t DataParallel::gradient_bytes_sent() const { return gradients_ ? gradients_->bytes_communicated() : 0; }

void DataParallel::count_step_cost(CostMeter& meter) const {
  if (!active()) return;  // the meter counted every execution as it ran (it defers only while active)
  const std::vector<CostMeter::RecordedExecution> local = meter.take_recorded();
  int64_t samples = 0;
  for (const auto& e : local) samples = std::max(samples, e.batch);
  // Ranks agree first on the shape of what they gather: as many executions, slices of one size. One MAX gives
  // the most and (negated) the fewest executions of any rank, and the largest slice.
  const auto count = static_cast<int64_t>(local.size());
  at::Tensor shape = at::tensor({count, -count, samples}, at::kLong);
  communicator_->all_reduce({shape}, ReduceOp::Max, "the step's layer count");
  const int64_t most = shape[0].item<int64_t>(), fewest = -shape[1].item<int64_t>();
  if (most != fewest)
    throw Error(fmt::format("data parallel: ranks executed different numbers of quantized layers in one step ({} to "
                            "{}); their models or configs differ",
                            fewest, most));
  samples = shape[2].item<int64_t>();
  const std::vector<at::Tensor> ranks = communicator_->all_gather(encode(local, samples), "the step's layer executions");
  for (size_t i = 0; i < local.size(); ++i) meter.count(merge(local[i], ranks, static_cast<int64_t>(i), samples));
}

std::vector<std::vector<int64_t>> DataParallel::gather_options(const std::vector<BlockDecision>& decisions) const {
  if (!active() || decisions.empty()) return {};
  const std::vector<std::vector<int64_t>> local = options_on_host(decisions);
  const auto blocks = static_cast<int64_t>(local.size());
  const auto samples = static_cast<int64_t>(local.front().size());
  at::Tensor mine = at::empty({blocks, samples}, at::kLong);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t s = 0; s < samples; ++s) mine[b][s] = local[b][s];
  std::vector<std::vector<int64_t>> all(local.size());
  for (const at::Tensor& r : communicator_->all_gather(mine, "the gates' decisions")) {
    auto a = r.accessor<int64_t, 2>();
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t s = 0; s < samples; ++s) all[b].push_back(a[b][s]);
  }
  return all;
}

StepTotals DataParallel::reduce(const StepTotals& local) const {
  if (!active()) return local;
  at::Tensor v = at::tensor({local.loss_sum, local.predictions, local.correct, local.samples,
                             local.nonfinite ? 1.0 : 0.0, local.stop ? 1.0 : 0.0},
                            at::kDouble);
  communicator_->all_reduce({v}, ReduceOp::Sum, "the step's loss and accuracy");
  const double* p = v.data_ptr<double>();
  StepTotals global;
  global.loss_sum = p[0];
  global.predictions = p[1];
  global.correct = p[2];
  global.samples = p[3];
  global.nonfinite = p[4] > 0;
  global.stop = p[5] > 0;
  return global;
}

}  // namespace fractrain
