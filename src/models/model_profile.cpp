#include "fractrain/models/model_profile.h"

#include <torch/torch.h>

#include <algorithm>

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

LayerRole role_in(const QuantizedModel& model, const std::string& layer) {
  const auto& head = model.head_layer_names();
  return layer == model.first_layer_name()                          ? LayerRole::Stem
         : layer == model.classifier_name()                         ? LayerRole::Classifier
         : std::find(head.begin(), head.end(), layer) != head.end() ? LayerRole::Head
                                                                    : LayerRole::Block;
}

}  // namespace

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
    p.role = role_in(model, p.name);
    p.error_backward_runs = p.role != LayerRole::Stem;
    // The layers report their operands (cost/layer_operands.h); read after the pass, a matmul's sizes are those
    // of the profiling input.
    if (const auto layer = model.layer_named(p.name)) {
      set_operand_sizes(p, layer->operand_geometry());
    } else if (const auto matmul = model.matmul_named(p.name)) {
      set_operand_sizes(p, matmul->last_operand_sizes());
    } else {
      throw Error("cost profile of " + model.model_name() + ": executed layer '" + p.name +
                  "' is not a quantized layer");
    }
    layers.push_back(std::move(p));
  }
  return ModelProfile(model.model_name(), std::move(layers));
}

}  // namespace fractrain
