#pragma once
// What a training run does differently as one of several data-parallel ranks (DESIGN.md 6, "Data parallel = the
// same run"). data.batch_size stays the global batch; rank r trains on its slice of every batch; what must agree
// across ranks is reduced here, so that N ranks compute what one process computes on the whole batch:
// - parameters and buffers start as rank 0's;
// - quantizer ranges (precision.sync_ranges) and BatchNorm statistics (train.sync_batchnorm) are the whole batch's;
// - the step's cost is the whole batch's (the ranks' layer executions merged, then counted once);
// - DFQ's batch cp and gate statistics, the training loss and accuracy, and the stop decision are global;
// - gradients are averaged (dist/gradient_sync.h).
// With one rank every function here is the identity and costs nothing.
#include <memory>
#include <vector>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/dist/communicator.h"
#include "fractrain/dist/gradient_sync.h"
#include "fractrain/dist/timed_communicator.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/precision/block_decision.h"
#include "fractrain/train/run_config.h"
#include "fractrain/train/training_task.h"

namespace fractrain {

// Sums over the ranks' slices of one step.
struct StepTotals {
  double loss_sum = 0;     // loss x predictions
  double predictions = 0;  // images or tokens
  double correct = 0;
  double samples = 0;      // images or sequences (the cost meter's unit)
  bool nonfinite = false;  // some rank's loss was NaN/Inf
  bool stop = false;       // some rank was asked to stop (SIGINT/SIGTERM)
};

// Throws fractrain::Error unless the global batch splits evenly over `ranks` (the launcher checks before it starts
// them, each rank again for launchers that are not ours).
void check_batch_splits_over_ranks(int64_t batch_size, int64_t ranks);

class DataParallel {
 public:
  // `communicator` carries the step's collectives; `gradient_communicator`, a second connection of the same
  // ranks, the gradient buckets sent from autograd hooks during backward (null: they are sent after backward on
  // `communicator`). Both null: one process. Throws fractrain::Error when the global batch does not split evenly
  // over the ranks.
  DataParallel(std::shared_ptr<Communicator> communicator, std::shared_ptr<Communicator> gradient_communicator,
               const RunConfig& config);

  int rank() const { return communicator_->rank(); }
  int world_size() const { return communicator_->world_size(); }
  bool active() const { return communicator_->world_size() > 1; }
  // Rank 0 alone writes the run directory, logs and checkpoints.
  bool writes() const { return rank() == 0; }
  const Communicator& communicator() const { return *communicator_; }

  // Before the first step (after a resume has loaded the checkpoint): gives every rank rank 0's parameters and
  // buffers, makes ranges and BatchNorm statistics global, and shards the task's training batches.
  void prepare(QuantizedModel& model, TrainingTask& task);
  // Around backward(): the gradients are averaged, in buckets sent as they become ready and the rest after.
  // `backward_bits` is the step's gradient width for train.grad_comm = bw (0: FP32), `step` selects its noise.
  void begin_backward(int backward_bits, uint64_t step);
  void average_gradients(int backward_bits, uint64_t step);
  // Bytes this rank has sent in gradient exchanges so far.
  int64_t gradient_bytes_sent() const;
  // Wall time this rank has spent in collectives so far (starting them and waiting for them), and how many.
  double communication_seconds() const { return clock_->seconds(); }
  int64_t collectives() const { return clock_->collectives.load(); }

  // Replaces the step's recorded layer executions (the meter defers while active) by the whole batch's and
  // counts them.
  void count_step_cost(CostMeter& meter) const;
  // The whole batch's option indices [block][sample], rank slices in rank order (empty when not active).
  std::vector<std::vector<int64_t>> gather_options(const std::vector<BlockDecision>& decisions) const;
  StepTotals reduce(const StepTotals& local) const;

 private:
  std::shared_ptr<CommunicationClock> clock_;
  std::shared_ptr<Communicator> communicator_, gradient_communicator_;
  bool sync_ranges_, sync_batchnorm_;
  int64_t local_batch_;  // this rank's slice of every training batch
  GradientSyncOptions gradient_options_;
  std::unique_ptr<GradientSynchronizer> gradients_;
};

}  // namespace fractrain
