#pragma once
// When the host reads what a training step computed (train.host_reads). Reading a step's loss, its correct
// predictions and whether it stayed finite makes the host wait for the device: on a GPU that stalls the queue of
// launches once per step. With deferred reads the step only queues work, its results add up on the device in
// DeferredStepTotals, and the trainer reads them at its read points (the progress line, the end of an indicator
// window, an evaluation, a checkpoint, the end of the run).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>

#include "fractrain/train/data_parallel.h"
#include "fractrain/train/run_config.h"

namespace fractrain {

// Resolves train.host_reads for a run on `device`: "deferred" or "auto" on a CUDA device in one process with
// train.on_nonfinite = stop defer; everything else reads every step. Throws fractrain::Error, naming the keys,
// when deferred reads are asked for where they cannot work: with on_nonfinite = skip (a step can only be skipped
// if its NaN is seen before the optimizer step) or with data parallelism (the ranks agree on each step's loss).
bool defers_host_reads(const TrainConfig& train, const c10::Device& device, bool data_parallel);

// The sums of the steps since the last read, on the steps' device.
class DeferredStepTotals {
 public:
  // One step (`step_number` is 1-based): `loss` is its mean loss over `predictions` (0-d), `correct` its correct
  // predictions (0-d, integral), `finite` whether its loss and every gradient were finite (0-d bool). Queues
  // device work only.
  void add(int64_t step_number, const at::Tensor& loss, const at::Tensor& correct, const at::Tensor& finite,
           double predictions, double samples);

  struct Read {
    StepTotals totals;                 // of the steps read; `nonfinite` when one of them was not finite
    int64_t steps = 0;                 // how many steps were read
    int64_t first_nonfinite_step = 0;  // 1-based; 0 when every step was finite
  };
  // Copies the sums to the host (one synchronisation) and starts new ones. Without pending steps, reads nothing.
  Read take();
  int64_t pending_steps() const { return steps_; }

 private:
  at::Tensor loss_sum_, correct_, first_nonfinite_;  // double, int64, int64 (0 = none yet)
  double predictions_ = 0, samples_ = 0;
  int64_t steps_ = 0;
};

}  // namespace fractrain
