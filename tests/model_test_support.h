#pragma once
// Helpers for model tests: parameter counts, and a few training steps on one fixed random batch.
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "fractrain/models/model_registry.h"
#include "fractrain/precision/static_plan.h"

namespace fractrain::test_support {

inline int64_t parameter_count(QuantizedModel& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

// The losses of `steps` SGD steps of `model` under `plan` on one random batch of `batch` samples (a model that
// learns fits it: the loss falls). `extra_loss`, when set, is added to the cross entropy after each forward pass
// (e.g. DFQ's cost term).
inline std::vector<double> losses_on_one_batch(QuantizedModel& model, const PrecisionPlan& plan,
                                               const ModelInputSpec& input, int64_t batch, int steps,
                                               const std::function<at::Tensor(const std::vector<BlockDecision>&)>&
                                                   extra_loss = nullptr) {
  model.train();
  torch::optim::SGD sgd(model.parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  const at::Tensor x = torch::randn({batch, input.channels, input.height, input.width});
  const at::Tensor y = torch::randint(0, input.num_classes, {batch}, torch::kLong);
  std::vector<double> losses;
  for (int step = 0; step < steps; ++step) {
    sgd.zero_grad();
    ForwardResult forward = model.run(x, plan);
    at::Tensor loss = torch::cross_entropy_loss(forward.output, y);
    if (extra_loss) loss = loss + extra_loss(forward.decisions);
    loss.backward();
    sgd.step();
    losses.push_back(loss.item<double>());
  }
  return losses;
}

// The same at FW-8/BW-8 for the plain model `name`.
inline std::vector<double> fw8bw8_losses_on_one_batch(const std::string& name, const ModelInputSpec& input,
                                                      int64_t batch, int steps) {
  torch::manual_seed(0);
  auto model = create_model(name, input);
  return losses_on_one_batch(*model, make_static_plan(*model, Precision::fw_bw(8, 8), {}), input, batch, steps);
}

}  // namespace fractrain::test_support
