#pragma once
// What the cost model needs to know about each quantized layer of a model, measured once by running the model:
// its forward MACs per sample and the sizes of its operands (weights, input and output activations). Running the
// model is the model zoo's job (profile_model, next to QuantizedModel); cost only sizes each layer from what the
// layer reports (layer_operands.h), so it depends on no model.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "fractrain/cost/cost_observer.h"
#include "fractrain/cost/layer_operands.h"

namespace fractrain {

// The paper's cost tables count the gated blocks only: "block" is every layer inside the network's residual
// blocks (the BasicBlocks of a ResNet, the inverted residuals of MobileNetV2, depthwise convs included), the
// blocks DFQ gates. Head: a layer between the blocks and the classifier (MobileNetV2's last 1x1 conv).
enum class LayerRole { Stem, Block, Head, Classifier };
const char* to_string(LayerRole role);

struct LayerProfile {
  std::string name;
  LayerKind kind = LayerKind::Conv;
  LayerRole role = LayerRole::Block;
  std::vector<int64_t> weight_shape;
  int64_t macs_per_sample = 0;
  int64_t weight_elements = 0;
  int64_t input_elements = 0;    // per sample: what the layer reads
  int64_t output_elements = 0;   // per sample
  int64_t output_channels = 0;
  int64_t output_positions = 0;  // per sample: spatial positions (conv) or tokens (linear)
  // False for the layer whose input is the data: autograd never computes the gradient of the input images,
  // so that layer's error backward pass is not executed (the paper's convention still counts it).
  bool error_backward_runs = true;
};

class ModelProfile {
 public:
  ModelProfile() = default;
  ModelProfile(std::string model, std::vector<LayerProfile> layers);

  const std::string& model() const { return model_; }
  const std::vector<LayerProfile>& layers() const { return layers_; }
  // Index of the layer in layers(); -1 when the model has no such layer.
  int64_t index_of(const std::string& layer_name) const;
  // Forward MACs per sample of the whole network, or of the layers with one role.
  int64_t forward_macs() const;
  int64_t forward_macs(LayerRole role) const;

 private:
  std::string model_;
  std::vector<LayerProfile> layers_;
  std::unordered_map<std::string, int64_t> index_;
};

// Sizes the operands of `layer`, whose name and macs_per_sample are set, from what the layer reports. A layer
// with weights: fractrain::Error when its MACs are not a whole number of output positions (a multiple of its
// weight elements).
void set_operand_sizes(LayerProfile& layer, const WeightedLayerGeometry& geometry);
void set_operand_sizes(LayerProfile& layer, const ActivationMatmulSizes& sizes);

}  // namespace fractrain
