#pragma once
// Models by name: `fractrain models` lists them, configs name them.
#include <memory>
#include <string>
#include <vector>

#include "fractrain/models/quantized_model.h"

namespace fractrain {

struct ModelInfo {
  std::string name;
  std::string description;
};

std::vector<ModelInfo> list_models();

// Throws fractrain::Error naming the unknown model and the known ones (with a did-you-mean).
std::shared_ptr<QuantizedModel> create_model(const std::string& name, const ModelInputSpec& input);

}  // namespace fractrain
