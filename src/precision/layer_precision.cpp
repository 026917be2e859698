#include "fractrain/precision/layer_precision.h"

#include <c10/core/ScalarType.h>

#include <algorithm>

#include "fractrain/util/error.h"

namespace fractrain {

LayerPrecision LayerPrecision::uniform(const Precision& p) {
  check_bits(p.act, "activation bits");
  check_bits(p.weight, "weight bits");
  check_bits(p.grad, "gradient bits");
  LayerPrecision lp;
  lp.weight_ = p.weight;
  lp.act_ = p.act;
  lp.grad_ = p.grad;
  return lp;
}

LayerPrecision LayerPrecision::per_sample(int weight_bits, std::vector<int> act_bits, std::vector<int> grad_bits) {
  check_bits(weight_bits, "weight bits");
  if (act_bits.size() != grad_bits.size())
    throw Error("per-sample precision needs one activation and one gradient width per sample (got " +
                std::to_string(act_bits.size()) + " and " + std::to_string(grad_bits.size()) + ")");
  for (int b : act_bits) check_bits(b, "per-sample activation bits");
  for (int b : grad_bits) check_bits(b, "per-sample gradient bits");
  LayerPrecision lp;
  lp.weight_ = weight_bits;
  lp.sample_act_ = std::move(act_bits);
  lp.sample_grad_ = std::move(grad_bits);
  lp.per_sample_ = true;
  return lp;
}

LayerPrecision LayerPrecision::per_sample_on_device(int weight_bits, DeviceWidths widths) {
  check_bits(weight_bits, "weight bits");
  const auto check = [](const at::Tensor& t, at::ScalarType type, const char* what) {
    if (!t.defined() || t.dim() != 1 || t.scalar_type() != type)
      throw Error(std::string("per-sample precision on the device: ") + what + " must be a 1-D " +
                  c10::toString(type) + " tensor, got " + (t.defined() ? t.toString() : std::string("none")));
  };
  check(widths.act, at::kInt, "the activation widths");
  check(widths.grad, at::kInt, "the gradient widths");
  check(widths.runs, at::kFloat, "the running samples");
  if (widths.grad.size(0) != widths.act.size(0) || widths.runs.size(0) != widths.act.size(0) ||
      widths.grad.device() != widths.act.device() || widths.runs.device() != widths.act.device())
    throw Error("per-sample precision on the device: the activation widths, gradient widths and running samples "
                "must have one entry per sample each, on one device");
  LayerPrecision lp;
  lp.weight_ = weight_bits;
  lp.device_ = std::move(widths);
  lp.per_sample_ = true;
  return lp;
}

bool LayerPrecision::act_full() const {
  if (on_device()) return false;
  if (!is_per_sample()) return act_ == 0;
  return std::all_of(sample_act_.begin(), sample_act_.end(), [](int b) { return b == 0; });
}

bool LayerPrecision::grad_full() const {
  if (on_device()) return false;
  if (!is_per_sample()) return grad_ == 0;
  return std::all_of(sample_grad_.begin(), sample_grad_.end(), [](int b) { return b == 0; });
}

Precision LayerPrecision::for_sample(int64_t i) const {
  if (!is_per_sample()) return Precision{act_, weight_, grad_, false};
  if (on_device())
    throw Error("per-sample precision on the device: sample " + std::to_string(i) +
                "'s widths are not on the host (read LayerPrecision::device_widths())");
  return Precision{sample_act_.at(i), weight_, sample_grad_.at(i), false};
}

std::string LayerPrecision::describe() const {
  if (on_device()) return "per sample on the device (W" + std::to_string(weight_) + ")";
  if (!is_per_sample()) return to_string(for_sample(0));
  if (samples() == 0) return "per sample, no samples";
  return to_string(for_sample(0)) + " (per sample)";
}

std::vector<std::string> PrecisionPlan::overridden_layers() const {
  std::vector<std::string> names;
  for (const auto& [name, precision] : overrides_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace fractrain
