#include "fractrain/train/graphed_training.h"

#include <torch/torch.h>

namespace fractrain {

ReplaySchedule::Decision ReplaySchedule::next(int64_t samples, int stage, bool captured) {
  Decision d;
  if (stage != stage_) {
    d.new_stage = true;
    stage_ = stage;
    eager_steps_ = 0;
    captured = false;  // the old stage's graph is dropped
  }
  d.replay = samples == full_batch_ && (captured || eager_steps_ >= warmup_steps_);
  if (!d.replay) ++eager_steps_;  // the last partial batch of an epoch runs eagerly too
  return d;
}

GraphedTraining::GraphedTraining(QuantizedModel& model, QuantizerSettings settings, const c10::Device& device,
                                 int64_t full_batch)
    : model_(model), device_(device), schedule_(full_batch) {
  // The model was made and loaded on the default stream; the graphs' stream must see that work done.
  torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
  graph_ = std::make_unique<GraphedStep>(device);
  noise_step_ = torch::zeros({1}, torch::dtype(torch::kLong).device(device));
  settings.noise_step = noise_step_;
  model_.set_quantizer_settings(settings);
}

void GraphedTraining::set_step(int64_t step) { noise_step_.fill_(step); }

bool GraphedTraining::replays(const TaskBatch& batch, int stage) {
  const ReplaySchedule::Decision d = schedule_.next(batch.samples(), stage, graph_->captured());
  if (d.new_stage) {
    graph_->reset();
    inputs_ = targets_ = output_ = loss_ = at::Tensor();
    grads_.clear();
    cost_ = CostMeter::StepRecord();
    observation_ = nullptr;
  }
  return d.replay;
}

void GraphedTraining::capture(const TaskBatch& batch, const Step& step, CostMeter& meter,
                              PrecisionController& controller) {
  inputs_ = torch::empty(batch.inputs.sizes(), batch.inputs.options().device(device_));
  targets_ = torch::empty(batch.targets.sizes(), batch.targets.options().device(device_));
  const auto parameters = model_.parameters();
  for (auto p : parameters) p.mutable_grad() = at::Tensor();
  Computed computed;
  graph_->capture([&] { computed = step(inputs_, targets_); });
  output_ = computed.output.detach();
  loss_ = computed.loss.detach();
  grads_.clear();
  for (const auto& p : parameters) grads_.push_back(p.grad());
  // Nothing of the step ran: what its host code reported is taken back, to be repeated after each replay.
  cost_ = meter.take_step_in_progress();
  observation_ = controller.take_captured_observation();
}

GraphedTraining::Replayed GraphedTraining::replay(const TaskBatch& batch, const Step& step, CostMeter& meter,
                                                  PrecisionController& controller) {
  if (!graph_->captured()) capture(batch, step, meter, controller);
  inputs_.copy_(batch.inputs.pin_memory(), /*non_blocking=*/true);
  targets_.copy_(batch.targets.pin_memory(), /*non_blocking=*/true);
  graph_->replay();
  auto parameters = model_.parameters();
  for (size_t i = 0; i < parameters.size(); ++i) parameters[i].mutable_grad() = grads_[i];
  meter.charge(cost_);
  if (observation_) observation_();
  return {output_, loss_, targets_};
}

}  // namespace fractrain
