#pragma once
// Base of every model in the zoo: a module tree containing quantized layers, run under a PrecisionPlan.
#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

#include "fractrain/nn/qmatmul.h"
#include "fractrain/nn/quantized_layer.h"
#include "fractrain/precision/block_decision.h"

namespace fractrain {

// What the data looks like to the model.
struct ModelInputSpec {
  int64_t channels = 3, height = 32, width = 32;
  int64_t num_classes = 10;
  // > 0: a token model (language model): the input is int64 ids [B, sequence_length], num_classes is the
  // vocabulary size, and channels/height/width are unused.
  int64_t sequence_length = 0;
};

// A zero input of one sample as the model takes it: float [1, C, H, W] images, or int64 [1, T] token ids.
at::Tensor example_input(const ModelInputSpec& input, const at::TensorOptions& options);

// What one forward pass returns: the model's output and the decisions its gates took (none without gates).
struct ForwardResult {
  at::Tensor output;
  std::vector<BlockDecision> decisions;
};

class QuantizedModel : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& images, const PrecisionPlan& plan) = 0;
  // The forward pass as the trainer runs it: checks that the plan names only layers of this model (check_plan),
  // then returns the output with the decisions the pass took.
  ForwardResult run(const at::Tensor& input, const PrecisionPlan& plan);
  // Throws fractrain::Error naming the first layer the plan overrides that this model does not have (a typo
  // would otherwise run that layer silently at the plan's default precision).
  void check_plan(const PrecisionPlan& plan) const;

  // The blocks whose precision DFQ gates choose, in execution order; empty for a model without gates.
  virtual std::vector<std::string> gated_blocks() const { return {}; }

  const std::string& model_name() const { return model_name_; }
  // Quantized layers in execution order, with their full names and indices assigned.
  const std::vector<std::shared_ptr<QuantizedLayer>>& quantized_layers() const { return quantized_layers_; }
  // Activation-by-activation matmuls (attention), in execution order; empty for convolutional models.
  const std::vector<std::shared_ptr<QMatmul>>& quantized_matmuls() const { return quantized_matmuls_; }
  // The quantized layer / matmul of that full name; null when the model has none.
  std::shared_ptr<QuantizedLayer> layer_named(const std::string& name) const;
  std::shared_ptr<QMatmul> matmul_named(const std::string& name) const;
  // The stem convolution and the classifier: kept FP32 or quantized by policy (DESIGN.md 4.2). A model whose
  // first quantized layer does not read the data (a language model reads embeddings) has no stem: "".
  const std::string& first_layer_name() const { return first_layer_name_; }
  const std::string& classifier_name() const { return classifier_name_; }
  // Layers outside the network's blocks other than the stem and the classifier (MobileNetV2's last 1x1 conv):
  // cost reports do not count them with the blocks.
  const std::vector<std::string>& head_layer_names() const { return head_layer_names_; }

  void set_cost_observer(CostObserver* observer);
  // The settings of every quantized layer and matmul (the last set_quantizer_settings; defaults before).
  void set_quantizer_settings(const QuantizerSettings& settings);
  const QuantizerSettings& quantizer_settings() const { return quantizer_settings_; }

 protected:
  explicit QuantizedModel(std::string model_name) : model_name_(std::move(model_name)) {}
  // A gated model returns its gates' decisions here; the default runs forward() and decides nothing.
  virtual ForwardResult forward_with_decisions(const at::Tensor& input, const PrecisionPlan& plan) {
    return {forward(input, plan), {}};
  }
  // Call at the end of the derived constructor: names and numbers every quantized layer and matmul.
  // `first_layer` may be "" (no stem).
  void finalize_layers(const std::string& first_layer, const std::string& classifier,
                       std::vector<std::string> head_layers = {});

 private:
  std::string model_name_, first_layer_name_, classifier_name_;
  std::vector<std::string> head_layer_names_;
  std::vector<std::shared_ptr<QuantizedLayer>> quantized_layers_;
  std::vector<std::shared_ptr<QMatmul>> quantized_matmuls_;
  QuantizerSettings quantizer_settings_;
};

}  // namespace fractrain
