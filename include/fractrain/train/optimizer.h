#pragma once
// The optimizer of a run (optim.name): SGD with momentum, or Adam (the Transformer recipe's), and setting the
// learning rate of every parameter group whichever it is.
#include <torch/optim/optimizer.h>

#include <memory>
#include <vector>

#include "fractrain/train/run_config.h"

namespace fractrain {

// Throws fractrain::Error for an unknown optim.name.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimConfig& optim, std::vector<at::Tensor> parameters);

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

}  // namespace fractrain
