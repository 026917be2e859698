#pragma once
// What a run is made of before its first step, the same for `fractrain train` and `fractrain eval`: the device and
// threads, the task (data), the model (seeded weights, quantizer settings) and its optimizer.
#include <c10/core/Device.h>
#include <torch/optim/optimizer.h>

#include <memory>
#include <string>

#include "fractrain/models/quantized_model.h"
#include "fractrain/train/run_config.h"
#include "fractrain/train/training_task.h"

namespace fractrain {

struct RunSetup {
  c10::Device device = c10::kCPU;
  int threads = 1;
  std::unique_ptr<TrainingTask> task;  // the data, the loss's unit (image or token) and the evaluation
  std::shared_ptr<QuantizedModel> model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
};

// Checks the precision schedule first (before the slow part), then builds everything. `run_dir` is the directory
// of the run a checkpoint came from ("" for a new run): a language model reads that run's vocabulary.
RunSetup set_up_run(const RunConfig& config, const std::string& run_dir);

// The run directory a checkpoint file lies in (RUN_DIR/checkpoints/last.ckpt -> RUN_DIR); "" for "".
std::string run_dir_of_checkpoint(const std::string& checkpoint);

}  // namespace fractrain
