#pragma once
// What a run does when a step's loss or gradient is NaN/Inf (train.on_nonfinite): stop with a message that
// names the step, the precision and the first layer whose output was not finite (the default), or skip the
// step and lower the learning rate. Also the fault injection that tests it: TrainOptions::inject_nan
// ("STEP:LAYER", `fractrain train --inject-nan`) makes that layer output a NaN during that step.
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "fractrain/models/quantized_model.h"
#include "fractrain/train/run_config.h"

namespace fractrain {

class NonfiniteGuard {
 public:
  // Throws fractrain::Error for an `inject_nan` that is not STEP:LAYER or names a layer the model lacks.
  NonfiniteGuard(const TrainConfig& train, const std::string& inject_nan, QuantizedModel& model);

  // Around the forward pass of step `step_number` (1-based): the injected layer outputs NaN during its step.
  void arm_for_step(int64_t step_number);
  void disarm();

  // Runs the batch's forward pass again with every quantized layer checking its output, to name the first layer
  // whose output is not finite. The rerun is not training cost: the layers report to no cost observer during
  // it and to `cost_observer` afterwards.
  std::string locate_nonfinite_output(const at::Tensor& inputs, const PrecisionPlan& plan,
                                      CostObserver* cost_observer);
  // The first parameter (by module path) whose gradient holds a NaN or Inf; empty when all are finite.
  std::string first_nonfinite_gradient() const;
  // Whether every gradient is finite, as a 0-d bool tensor on the parameters' device: nothing is read on the host
  // (train.host_reads = deferred). A NaN or Inf anywhere makes the sum of all gradients non-finite.
  at::Tensor gradients_finite() const;

  // A step that went non-finite: with on_nonfinite = stop throws fractrain::Error saying what went wrong where
  // and how to avoid it; with skip returns the factor to multiply the learning rate by, and the caller counts
  // the skipped step.
  double handle(const std::string& what, int64_t step_number, const std::string& precision_label) const;

 private:
  const TrainConfig& train_;
  QuantizedModel& model_;
  int64_t fault_step_ = -1;
  std::shared_ptr<QuantizedLayer> fault_layer_;
  bool armed_ = false;
};

}  // namespace fractrain
