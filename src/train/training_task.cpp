#include "fractrain/train/training_task.h"

#include <torch/torch.h>

#include "task_factories.h"
#include "fractrain/data/token_corpus.h"

namespace fractrain {

at::Tensor prediction_loss(const at::Tensor& logits, const at::Tensor& targets) {
  return torch::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

at::Tensor count_correct_predictions(const at::Tensor& logits, const at::Tensor& targets) {
  return logits.argmax(-1).eq(targets).sum();
}

int64_t correct_predictions(const at::Tensor& logits, const at::Tensor& targets) {
  return count_correct_predictions(logits, targets).item<int64_t>();
}

std::unique_ptr<TrainingTask> make_training_task(const RunConfig& config, const std::string& run_dir) {
  if (is_token_dataset(config.data.dataset)) return make_language_model_task(config, run_dir);
  return make_classification_task(config);
}

}  // namespace fractrain
