#include "fractrain/train/nonfinite_guard.h"

#include <torch/torch.h>

#include <cstdio>
#include <vector>

#include "fractrain/util/error.h"

namespace fractrain {

NonfiniteGuard::NonfiniteGuard(const TrainConfig& train, const std::string& inject_nan, QuantizedModel& model)
    : train_(train), model_(model) {
  if (inject_nan.empty()) return;
  const size_t colon = inject_nan.find(':');
  try {
    fault_step_ = std::stoll(inject_nan.substr(0, colon));
  } catch (const std::exception&) {
    throw Error("--inject-nan '" + inject_nan + "': write STEP:LAYER, e.g. 3:stage1.0.conv1");
  }
  const std::string layer = colon == std::string::npos ? "" : inject_nan.substr(colon + 1);
  fault_layer_ = model_.layer_named(layer);
  if (!fault_layer_) throw Error("--inject-nan: the model has no quantized layer '" + layer + "'");
  std::printf("fault injection: layer %s outputs a NaN at step %lld\n", layer.c_str(), (long long)fault_step_);
}

void NonfiniteGuard::arm_for_step(int64_t step_number) {
  armed_ = fault_layer_ && step_number == fault_step_;
  if (armed_) fault_layer_->set_inject_nan(true);
}

void NonfiniteGuard::disarm() {
  if (armed_) fault_layer_->set_inject_nan(false);
  armed_ = false;
}

std::string NonfiniteGuard::locate_nonfinite_output(const at::Tensor& inputs, const PrecisionPlan& plan,
                                                    CostObserver* cost_observer) {
  const auto& layers = model_.quantized_layers();
  for (const auto& l : layers) l->set_check_finite_output(true);
  model_.set_cost_observer(nullptr);
  std::string where = "every quantized layer's output was finite (the overflow came after them: BatchNorm or the loss)";
  try {
    torch::NoGradGuard no_grad;
    model_.forward(inputs, plan);
  } catch (const Error& e) {
    where = e.what();
  }
  for (const auto& l : layers) l->set_check_finite_output(false);
  model_.set_cost_observer(cost_observer);
  return where;
}

std::string NonfiniteGuard::first_nonfinite_gradient() const {
  for (const auto& p : model_.named_parameters()) {
    const at::Tensor& g = p.value().grad();
    if (g.defined() && !torch::isfinite(g).all().item<bool>()) return p.key();
  }
  return "";
}

at::Tensor NonfiniteGuard::gradients_finite() const {
  std::vector<at::Tensor> sums;
  for (const auto& p : model_.parameters())
    if (p.grad().defined()) sums.push_back(p.grad().sum().to(at::kDouble));
  if (sums.empty()) return torch::ones({}, torch::TensorOptions().dtype(at::kBool));
  // In double, finite float gradients cannot overflow the sum: only a NaN or Inf makes it non-finite.
  return torch::isfinite(torch::stack(sums).sum());
}

double NonfiniteGuard::handle(const std::string& what, int64_t step_number, const std::string& precision_label) const {
  const std::string step = "step " + std::to_string(step_number) + " (precision " + precision_label + ")";
  if (train_.on_nonfinite == "stop")
    throw Error("at " + step + ", " + what +
                ". Lower optim.lr, add schedule.warmup_iterations, raise the precision, or set "
                "train.on_nonfinite=skip to skip such steps");
  return train_.nonfinite_lr_factor;
}

}  // namespace fractrain
