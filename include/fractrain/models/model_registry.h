#pragma once
// Models by name: one table (model_registry.cpp) says which names exist, what they are and how to build their
// plain and DFQ-gated forms; `fractrain models` lists it, configs name its entries, unknown names get a
// did-you-mean from it.
#include <memory>
#include <string>
#include <vector>

#include "fractrain/models/gate_execution.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/models/transformer_lm.h"

namespace fractrain {

struct ModelInfo {
  std::string name;
  std::string description;
  bool gated_form = false;  // has a DFQ-gated form (precision.mode = dfq or fractrain)
};

std::vector<ModelInfo> list_models();

// Throws fractrain::Error naming the unknown model and the known ones (with a did-you-mean).
// `transformer` sizes the transformer-lm (the config's model.* keys); other models ignore it.
std::shared_ptr<QuantizedModel> create_model(const std::string& name, const ModelInputSpec& input,
                                             const TransformerLmOptions& transformer = {});

// The DFQ-gated form of a model (a gate per block choosing among `options`; gated_blocks() lists the blocks and
// run() returns the decisions). Throws fractrain::Error for unknown models and for models without a gated form.
std::shared_ptr<QuantizedModel> create_gated_model(const std::string& name, const ModelInputSpec& input,
                                                   const OptionSet& options, GateExecution execution);

}  // namespace fractrain
