#include "fractrain/train/optimizer.h"

#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include "fractrain/util/error.h"

namespace fractrain {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimConfig& o, std::vector<at::Tensor> parameters) {
  if (o.name == "sgd")
    return std::make_unique<torch::optim::SGD>(
        std::move(parameters),
        torch::optim::SGDOptions(o.lr).momentum(o.momentum).weight_decay(o.weight_decay).nesterov(o.nesterov));
  if (o.name == "adam")
    return std::make_unique<torch::optim::Adam>(std::move(parameters), torch::optim::AdamOptions(o.lr)
                                                                           .betas({o.adam_beta1, o.adam_beta2})
                                                                           .eps(o.adam_eps)
                                                                           .weight_decay(o.weight_decay));
  throw Error("optim.name = '" + o.name + "' is not an optimizer: use sgd or adam");
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

}  // namespace fractrain
