#include "fractrain/cost/layer_profile.h"

#include <torch/torch.h>

#include <algorithm>

#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

struct ExecutedLayer {
  std::string name;
  LayerKind kind;
  int64_t macs_per_sample;
};

// Collects the layers one forward pass executes, in order; a layer run twice counts its MACs twice.
struct ExecutionRecorder : CostObserver {
  std::vector<ExecutedLayer> layers;
  void on_layer(const LayerExecution& e) override {
    for (auto& l : layers) {
      if (l.name == e.layer) {
        l.macs_per_sample += e.macs_per_sample;
        return;
      }
    }
    layers.push_back({e.layer, e.kind, e.macs_per_sample});
  }
};

// Attaches the recorder in eval mode and restores the model's mode and detaches it however the pass ends.
class ProbeGuard {
 public:
  ProbeGuard(QuantizedModel& model, CostObserver* observer) : model_(model), was_training_(model.is_training()) {
    model_.set_cost_observer(observer);
    model_.eval();
  }
  ~ProbeGuard() {
    model_.set_cost_observer(nullptr);
    model_.train(was_training_);
  }

 private:
  QuantizedModel& model_;
  bool was_training_;
};

const QuantizedLayer* layer_named(const QuantizedModel& model, const std::string& name) {
  for (const auto& l : model.quantized_layers())
    if (l->layer_name() == name) return l.get();
  return nullptr;
}

const QMatmul* matmul_named(const QuantizedModel& model, const std::string& name) {
  for (const auto& m : model.quantized_matmuls())
    if (m->layer_name() == name) return m.get();
  return nullptr;
}

// An attention matmul has no weights: both operands are activations of the sample, so they move (at the
// activation width) with every sample; the result is the output.
void fill_matmul_sizes(const QMatmul& matmul, LayerProfile& p) {
  p.weight_elements = 0;
  p.input_elements = matmul.last_operand_elements_per_sample();
  p.output_elements = matmul.last_output_elements_per_sample();
  p.output_channels = 1;
  p.output_positions = p.output_elements;
}

// Sizes from the layer's geometry: MACs per sample = weight elements x output positions for convs (any groups)
// and linear layers alike.
void fill_operand_sizes(const QuantizedLayer& layer, LayerProfile& p) {
  const at::Tensor& w = layer.weight_tensor();
  p.weight_shape = w.sizes().vec();
  p.weight_elements = w.numel();
  if (p.weight_elements <= 0 || p.macs_per_sample % p.weight_elements != 0)
    throw Error("cost profile: layer " + p.name + " has " + std::to_string(p.macs_per_sample) +
                " MACs per sample, not a multiple of its " + std::to_string(p.weight_elements) + " weights");
  p.output_positions = p.macs_per_sample / p.weight_elements;
  if (const auto* conv = dynamic_cast<const QConv2d*>(&layer)) {
    const QConv2dOptions& o = conv->options();
    p.output_channels = o.out_channels;
    p.input_elements = o.in_channels * p.output_positions * o.stride * o.stride;
  } else if (const auto* linear = dynamic_cast<const QLinear*>(&layer)) {
    p.output_channels = linear->out_features();
    p.input_elements = linear->in_features() * p.output_positions;
  } else {
    throw Error("cost profile: layer " + p.name + " is neither a QConv2d nor a QLinear; teach profile_model its "
                "operand sizes");
  }
  p.output_elements = p.output_channels * p.output_positions;
}

}  // namespace

const char* to_string(LayerRole role) {
  switch (role) {
    case LayerRole::Stem: return "stem";
    case LayerRole::Block: return "block";
    case LayerRole::Head: return "head";
    case LayerRole::Classifier: return "classifier";
  }
  return "?";
}

ModelProfile::ModelProfile(std::string model, ModelInputSpec input, std::vector<LayerProfile> layers)
    : model_(std::move(model)), input_(input), layers_(std::move(layers)) {
  for (size_t i = 0; i < layers_.size(); ++i) index_[layers_[i].name] = static_cast<int64_t>(i);
}

int64_t ModelProfile::index_of(const std::string& layer_name) const {
  auto it = index_.find(layer_name);
  return it == index_.end() ? -1 : it->second;
}

int64_t ModelProfile::forward_macs() const {
  int64_t total = 0;
  for (const auto& l : layers_) total += l.macs_per_sample;
  return total;
}

int64_t ModelProfile::forward_macs(LayerRole role) const {
  int64_t total = 0;
  for (const auto& l : layers_)
    if (l.role == role) total += l.macs_per_sample;
  return total;
}

ModelProfile profile_model(QuantizedModel& model, const ModelInputSpec& input) {
  ExecutionRecorder recorder;
  {
    ProbeGuard guard(model, &recorder);
    torch::NoGradGuard no_grad;
    const auto parameters = model.parameters();
    const auto options = torch::TensorOptions().device(parameters.empty() ? c10::Device(c10::kCPU)
                                                                          : parameters.front().device());
    PrecisionPlan every_layer = PrecisionPlan::uniform(Precision::full());
    every_layer.gating = false;  // a gated model runs every block, so every layer is profiled
    model.forward(example_input(input, options), every_layer);
  }
  std::vector<LayerProfile> layers;
  for (const auto& executed : recorder.layers) {
    LayerProfile p;
    p.name = executed.name;
    p.kind = executed.kind;
    p.macs_per_sample = executed.macs_per_sample;
    const auto& head = model.head_layer_names();
    p.role = p.name == model.first_layer_name()                        ? LayerRole::Stem
             : p.name == model.classifier_name()                       ? LayerRole::Classifier
             : std::find(head.begin(), head.end(), p.name) != head.end() ? LayerRole::Head
                                                                       : LayerRole::Block;
    p.error_backward_runs = p.role != LayerRole::Stem;
    if (const QuantizedLayer* layer = layer_named(model, p.name)) {
      fill_operand_sizes(*layer, p);
    } else if (const QMatmul* matmul = matmul_named(model, p.name)) {
      fill_matmul_sizes(*matmul, p);
    } else {
      throw Error("cost profile of " + model.model_name() + ": executed layer '" + p.name +
                  "' is not a quantized layer");
    }
    layers.push_back(std::move(p));
  }
  return ModelProfile(model.model_name(), input, std::move(layers));
}

}  // namespace fractrain
