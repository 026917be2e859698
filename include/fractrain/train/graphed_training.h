#pragma once
// train.cuda_graphs in the trainer's terms (the rules of a captured step: train/graphed_step.h). Which steps
// replay: full batches, once the precision stage in progress has run its warm-up steps eagerly (lazy
// initialisation, library workspaces and device constants are made outside the capture); a new stage drops the
// graph. The capture of a training step's forward and backward pass on static tensors, with every gradient unset
// so that the captured backward writes rather than adds. And what each replay repeats on the host: the parameters
// get the graph's gradients back (an eager step in between may have replaced them), the cost meter is charged with
// what the captured forward reported, the controller's observation of the step is repeated (DFQ).
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <vector>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/precision/precision_controller.h"
#include "fractrain/train/graphed_step.h"
#include "fractrain/train/training_task.h"

namespace fractrain {

// Which steps replay, as bookkeeping alone (testable without a GPU): a full batch replays once the stage in
// progress has run `warmup_steps` steps eagerly or its graph is captured; any other step runs eagerly and counts
// as warm-up. A new stage starts over, and says so, since its graph must be dropped.
class ReplaySchedule {
 public:
  explicit ReplaySchedule(int64_t full_batch, int64_t warmup_steps = 3)
      : full_batch_(full_batch), warmup_steps_(warmup_steps) {}
  struct Decision {
    bool replay = false;
    bool new_stage = false;
  };
  Decision next(int64_t samples, int stage, bool captured);

 private:
  int64_t full_batch_, warmup_steps_;
  int stage_ = -1;
  int64_t eager_steps_ = 0;
};

class GraphedTraining {
 public:
  // Makes the graphs' stream current for the lifetime of this object (GraphedStep) and gives the model's layers
  // `settings` with the device step counter their gradient noise is drawn for (QuantizerSettings::noise_step).
  GraphedTraining(QuantizedModel& model, QuantizerSettings settings, const c10::Device& device, int64_t full_batch);

  // Before every step, eager or replayed: the step whose noise the layers draw (a kernel argument, no copy).
  void set_step(int64_t step);
  // Whether a step of `batch` in stage `stage` replays; counts the eager steps of the stage otherwise.
  bool replays(const TaskBatch& batch, int stage);

  // What a training step computes on its inputs and targets on the device: forward pass, loss with the
  // controller's term, backward pass. Returns the output and the loss.
  struct Computed {
    at::Tensor output, loss;
  };
  using Step = std::function<Computed(const at::Tensor& inputs, const at::Tensor& targets)>;
  // Captures `step` if the stage has no graph yet (taking back what its host code left in `meter` and
  // `controller`), then copies `batch` in, replays, and repeats that host work. Returns the replay's output and
  // loss with the targets they were computed for (static tensors: read them before the next replay).
  struct Replayed {
    at::Tensor output, loss, targets;
  };
  Replayed replay(const TaskBatch& batch, const Step& step, CostMeter& meter, PrecisionController& controller);

 private:
  void capture(const TaskBatch& batch, const Step& step, CostMeter& meter, PrecisionController& controller);

  QuantizedModel& model_;
  c10::Device device_;
  std::unique_ptr<GraphedStep> graph_;
  at::Tensor noise_step_;  // int64 [1] on the device
  ReplaySchedule schedule_;
  at::Tensor inputs_, targets_, output_, loss_;  // the graph's static tensors
  std::vector<at::Tensor> grads_;                // the gradients its backward writes, by parameter
  CostMeter::StepRecord cost_;                   // what the captured forward charged the meter
  std::function<void()> observation_;            // the controller's bookkeeping of a step, repeated
};

}  // namespace fractrain
