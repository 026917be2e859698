#include "fractrain/cost/layer_profile.h"

#include "fractrain/util/error.h"

namespace fractrain {

const char* to_string(LayerRole role) {
  switch (role) {
    case LayerRole::Stem: return "stem";
    case LayerRole::Block: return "block";
    case LayerRole::Head: return "head";
    case LayerRole::Classifier: return "classifier";
  }
  return "?";
}

ModelProfile::ModelProfile(std::string model, std::vector<LayerProfile> layers)
    : model_(std::move(model)), layers_(std::move(layers)) {
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

// MACs per sample = weight elements x output positions, for convs (any groups) and linear layers alike.
void set_operand_sizes(LayerProfile& p, const WeightedLayerGeometry& geometry) {
  p.weight_shape = geometry.weight_shape;
  p.weight_elements = geometry.weight_shape.empty() ? 0 : 1;  // a layer that reported no weights has none
  for (int64_t d : geometry.weight_shape) p.weight_elements *= d;
  if (p.weight_elements <= 0 || p.macs_per_sample % p.weight_elements != 0)
    throw Error("cost profile: layer " + p.name + " has " + std::to_string(p.macs_per_sample) +
                " MACs per sample, not a multiple of its " + std::to_string(p.weight_elements) + " weights");
  p.output_positions = p.macs_per_sample / p.weight_elements;
  p.output_channels = geometry.output_channels;
  p.input_elements = geometry.input_elements_per_position * p.output_positions;
  p.output_elements = p.output_channels * p.output_positions;
}

// Both operands are activations of the sample, so they move (at the activation width) with every sample; the
// result is the output.
void set_operand_sizes(LayerProfile& p, const ActivationMatmulSizes& sizes) {
  p.weight_elements = 0;
  p.input_elements = sizes.operand_elements;
  p.output_elements = sizes.output_elements;
  p.output_channels = 1;
  p.output_positions = p.output_elements;
}

}  // namespace fractrain
