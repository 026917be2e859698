#pragma once
// Models by name: `fractrain models` lists them, configs name them.
#include <memory>
#include <string>
#include <vector>

#include "fractrain/models/gated_network.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/models/transformer_lm.h"

namespace fractrain {

struct ModelInfo {
  std::string name;
  std::string description;
};

std::vector<ModelInfo> list_models();

// Throws fractrain::Error naming the unknown model and the known ones (with a did-you-mean).
// `transformer` sizes the transformer-lm (the config's model.* keys); other models ignore it.
std::shared_ptr<QuantizedModel> create_model(const std::string& name, const ModelInputSpec& input,
                                             const TransformerLmOptions& transformer = {});

// The DFQ-gated form of a model (a gate per block choosing among `options`); the result also implements
// GatedNetwork. Throws fractrain::Error for unknown models and for models without a gated form.
std::shared_ptr<QuantizedModel> create_gated_model(const std::string& name, const ModelInputSpec& input,
                                                   const OptionSet& options, GateExecution execution);

}  // namespace fractrain
