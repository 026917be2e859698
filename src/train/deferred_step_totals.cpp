#include "fractrain/train/deferred_step_totals.h"

#include <torch/torch.h>

#include "fractrain/util/error.h"

namespace fractrain {

bool defers_host_reads(const TrainConfig& train, const c10::Device& device, bool data_parallel) {
  if (train.host_reads == "every_step") return false;
  if (train.host_reads == "auto") return device.is_cuda() && !data_parallel && train.on_nonfinite == "stop";
  if (train.on_nonfinite != "stop")
    throw Error("train.host_reads = deferred cannot be combined with train.on_nonfinite = " + train.on_nonfinite +
                ": a step is skipped only when its NaN/Inf is seen before its optimizer step; set "
                "train.host_reads = every_step (or auto)");
  if (data_parallel)
    throw Error("train.host_reads = deferred works in one process only: data-parallel ranks agree on every "
                "step's loss; set train.host_reads = every_step (or auto)");
  return true;
}

void DeferredStepTotals::add(int64_t step_number, const at::Tensor& loss, const at::Tensor& correct,
                             const at::Tensor& finite, double predictions, double samples) {
  const at::Tensor step_sum = loss.detach().to(at::kDouble) * predictions;
  const at::Tensor step_correct = correct.detach().to(at::kLong);
  if (steps_ == 0) {
    loss_sum_ = step_sum;
    correct_ = step_correct;
    first_nonfinite_ = torch::zeros({}, step_correct.options());
  } else {
    loss_sum_ = loss_sum_ + step_sum;
    correct_ = correct_ + step_correct;
  }
  // The first step that went non-finite keeps its number: later ones are its consequences.
  first_nonfinite_ = torch::where(finite.logical_not() & first_nonfinite_.eq(0), step_number, first_nonfinite_);
  predictions_ += predictions;
  samples_ += samples;
  ++steps_;
}

DeferredStepTotals::Read DeferredStepTotals::take() {
  Read r;
  if (steps_ == 0) return r;
  // One copy of the three sums, one wait for the device.
  const at::Tensor host =
      torch::stack({loss_sum_, correct_.to(at::kDouble), first_nonfinite_.to(at::kDouble)}).cpu();
  const double* v = host.data_ptr<double>();
  r.totals.loss_sum = v[0];
  r.totals.correct = v[1];
  r.first_nonfinite_step = static_cast<int64_t>(v[2]);
  r.totals.predictions = predictions_;
  r.totals.samples = samples_;
  r.totals.nonfinite = r.first_nonfinite_step > 0;
  r.steps = steps_;
  *this = DeferredStepTotals();
  return r;
}

}  // namespace fractrain
