#pragma once
// What a training checkpoint holds, and saving/loading it: model parameters and buffers (BN and activation
// running statistics), optimizer state (momentum buffers), the resolved config, and the trainer's position.
// Data order, augmentation and stochastic rounding are pure functions of (seed, epoch/step), so the position
// is all the "RNG state" there is.
#include <nlohmann/json.hpp>
#include <torch/optim/optimizer.h>

#include <string>

#include "fractrain/models/quantized_model.h"
#include "fractrain/train/run_config.h"

namespace fractrain {

struct TrainerState {
  int64_t step = 0;                           // completed training steps
  int64_t next_epoch = 0, next_batch = 0;     // loader cursor
  // The best evaluation score so far (TrainingTask::score): the test accuracy, or minus a language model's
  // validation loss.
  double best_accuracy = -1.0;
  int64_t best_step = -1;
  double train_seconds = 0.0;                 // wall time spent training (all sessions)
  // Training statistics accumulated since the last evaluation.
  double window_loss_sum = 0.0;
  int64_t window_correct = 0, window_samples = 0;
  // Training loss accumulated since the end of the last precision-indicator window (auto PFQ); kept apart
  // from the evaluation window because the two windows may differ.
  double indicator_loss_sum = 0.0;
  int64_t indicator_samples = 0;
  // The precision controller's state (PrecisionController::state()) and the per-stage cost (StageCosts::state()).
  nlohmann::json precision;
  nlohmann::json stage_costs;
  // The cost meter's totals (CostMeter::state()), so that a resumed run's cost continues where it stopped.
  nlohmann::json cost;
  // train.on_nonfinite = "skip": steps skipped for a NaN/Inf loss or gradient, and the learning-rate factor the
  // skips have accumulated (train.nonfinite_lr_factor per skip).
  int64_t skipped_steps = 0;
  double lr_scale = 1.0;
  // What the task records about its data (TrainingTask::state(): a language model's vocabulary and corpus checksums).
  nlohmann::json task;
  // Data parallel: the ranks that wrote the checkpoint (1: one process), and the bytes each rank has sent in
  // gradient exchanges (all sessions). Another world size may resume it: the global batch is the config's.
  int64_t world_size = 1;
  int64_t gradient_bytes_per_rank = 0;
};

void save_run_checkpoint(const std::string& path, const RunConfig& config, QuantizedModel& model,
                         torch::optim::Optimizer& optimizer, const TrainerState& state);

// Restores model, optimizer and trainer state. Throws fractrain::Error if the file is not a fractrain
// checkpoint, is damaged, or was written for another model.
TrainerState load_run_checkpoint(const std::string& path, QuantizedModel& model, torch::optim::Optimizer& optimizer);

// The config stored in a checkpoint (to resume or evaluate without the original recipe).
RunConfig checkpoint_config(const std::string& path);

}  // namespace fractrain
