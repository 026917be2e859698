#pragma once
// The two tasks behind make_training_task (internal to src/train): classification_task.cpp and
// language_model_task.cpp.
#include <memory>

#include "fractrain/train/training_task.h"

namespace fractrain {

std::unique_ptr<TrainingTask> make_classification_task(const RunConfig& config);
std::unique_ptr<TrainingTask> make_language_model_task(const RunConfig& config, const std::string& run_dir);

}  // namespace fractrain
