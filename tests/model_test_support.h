#pragma once
// Helpers for model tests: parameter counts, and a few training steps on one fixed random batch.
#include <torch/torch.h>

#include <vector>

#include "fractrain/models/model_registry.h"
#include "fractrain/precision/static_plan.h"

namespace fractrain::test_support {

inline int64_t parameter_count(QuantizedModel& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

// The losses of `steps` SGD steps at FW-8/BW-8 on one random batch of `batch` samples (a model that learns
// fits it: the loss falls).
inline std::vector<double> fw8bw8_losses_on_one_batch(const std::string& name, const ModelInputSpec& input,
                                                      int64_t batch, int steps) {
  torch::manual_seed(0);
  auto model = create_model(name, input);
  model->train();
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  const PrecisionPlan plan = make_static_plan(*model, Precision::fw_bw(8, 8), {});
  const at::Tensor x = torch::randn({batch, input.channels, input.height, input.width});
  const at::Tensor y = torch::randint(0, input.num_classes, {batch}, torch::kLong);
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    sgd.zero_grad();
    at::Tensor loss = torch::cross_entropy_loss(model->forward(x, plan), y);
    loss.backward();
    sgd.step();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

}  // namespace fractrain::test_support
