#include "fractrain/models/quantized_model.h"

#include <torch/torch.h>

#include "fractrain/util/error.h"

namespace fractrain {

void QuantizedModel::finalize_layers(const std::string& first_layer, const std::string& classifier,
                                     std::vector<std::string> head_layers) {
  quantized_layers_.clear();
  quantized_matmuls_.clear();
  for (const auto& item : named_modules("", /*include_self=*/false)) {
    if (auto matmul = std::dynamic_pointer_cast<QMatmul>(item.value())) {
      matmul->set_layer_name(item.key());
      quantized_matmuls_.push_back(matmul);
    }
    auto layer = std::dynamic_pointer_cast<QuantizedLayer>(item.value());
    if (!layer) continue;
    layer->set_layer_name(item.key());
    layer->set_layer_index(static_cast<int64_t>(quantized_layers_.size()));
    quantized_layers_.push_back(layer);
  }
  auto has = [&](const std::string& name) { return layer_named(name) != nullptr; };
  // Matmuls number after the layers, so that every noise stream is distinct and the layers' are as before.
  for (size_t i = 0; i < quantized_matmuls_.size(); ++i)
    quantized_matmuls_[i]->set_layer_index(static_cast<int64_t>(quantized_layers_.size() + i));
  if ((!first_layer.empty() && !has(first_layer)) || !has(classifier))
    throw Error("model " + model_name_ + ": first layer '" + first_layer + "' or classifier '" + classifier +
                "' is not a quantized layer of the model");
  for (const auto& name : head_layers)
    if (!has(name)) throw Error("model " + model_name_ + ": head layer '" + name + "' is not a quantized layer of the model");
  first_layer_name_ = first_layer;
  classifier_name_ = classifier;
  head_layer_names_ = std::move(head_layers);
}

std::shared_ptr<QuantizedLayer> QuantizedModel::layer_named(const std::string& name) const {
  for (const auto& l : quantized_layers_)
    if (l->layer_name() == name) return l;
  return nullptr;
}

std::shared_ptr<QMatmul> QuantizedModel::matmul_named(const std::string& name) const {
  for (const auto& m : quantized_matmuls_)
    if (m->layer_name() == name) return m;
  return nullptr;
}

ForwardResult QuantizedModel::run(const at::Tensor& input, const PrecisionPlan& plan) {
  check_plan(plan);
  return forward_with_decisions(input, plan);
}

void QuantizedModel::check_plan(const PrecisionPlan& plan) const {
  for (const auto& name : plan.overridden_layers()) {
    if (!layer_named(name) && !matmul_named(name))
      throw Error("the precision plan names layer '" + name + "', which model " + model_name_ +
                  " does not have; `fractrain cost " + model_name_ + "` lists its quantized layers");
  }
}

void QuantizedModel::set_cost_observer(CostObserver* observer) {
  for (auto& l : quantized_layers_) l->set_cost_observer(observer);
  for (auto& m : quantized_matmuls_) m->set_cost_observer(observer);
}

void QuantizedModel::set_quantizer_settings(const QuantizerSettings& settings) {
  quantizer_settings_ = settings;
  for (auto& l : quantized_layers_) l->set_quantizer_settings(settings);
  for (auto& m : quantized_matmuls_) m->set_quantizer_settings(settings);
}

at::Tensor example_input(const ModelInputSpec& input, const at::TensorOptions& options) {
  if (input.sequence_length > 0) return torch::zeros({1, input.sequence_length}, options.dtype(torch::kLong));
  return torch::zeros({1, input.channels, input.height, input.width}, options.dtype(torch::kFloat));
}

}  // namespace fractrain
