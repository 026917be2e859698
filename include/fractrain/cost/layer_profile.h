#pragma once
// What the cost model needs to know about each quantized layer of a model, measured once by running the model:
// its forward MACs per sample and the sizes of its operands (weights, input and output activations).
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "fractrain/cost/cost_observer.h"
#include "fractrain/models/quantized_model.h"

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
  ModelProfile(std::string model, ModelInputSpec input, std::vector<LayerProfile> layers);

  const std::string& model() const { return model_; }
  const ModelInputSpec& input() const { return input_; }
  const std::vector<LayerProfile>& layers() const { return layers_; }
  // Index of the layer in layers(); -1 when the model has no such layer.
  int64_t index_of(const std::string& layer_name) const;
  // Forward MACs per sample of the whole network, or of the layers with one role.
  int64_t forward_macs() const;
  int64_t forward_macs(LayerRole role) const;

 private:
  std::string model_;
  ModelInputSpec input_;
  std::vector<LayerProfile> layers_;
  std::unordered_map<std::string, int64_t> index_;
};

// Runs one FP32 forward pass of a single zero input (example_input: an image or a token sequence; eval mode, no gradients) and records every quantized layer
// in execution order. Leaves the model's train/eval mode as it was and detaches any cost observer.
//
// A convolution's input size is taken as in_channels x (positions x stride^2): exact whenever the input's height
// and width are multiples of the stride (every model of the zoo at 32x32, 28x28 and 224x224).
ModelProfile profile_model(QuantizedModel& model, const ModelInputSpec& input);

}  // namespace fractrain
