#include "fractrain/models/model_registry.h"

#include <functional>
#include <regex>

#include "fractrain/models/gated_resnet_cifar.h"
#include "fractrain/util/did_you_mean.h"
#include "fractrain/util/error.h"

namespace fractrain {

std::vector<ModelInfo> list_models() {
  std::vector<ModelInfo> models;
  for (int depth : {20, 38, 74, 110, 164}) {
    const int n = (depth - 2) / 6;
    models.push_back({"resnet" + std::to_string(depth),
                      "CIFAR ResNet-" + std::to_string(depth) + ": 3 stages x " + std::to_string(n) +
                          " BasicBlocks, 16/32/64 channels"});
  }
  return models;
}

std::shared_ptr<QuantizedModel> create_model(const std::string& name, const ModelInputSpec& input) {
  // Any 6n+2 depth is accepted ("resnet8", "resnet56"); the listed ones are the paper's.
  static const std::regex resnet("resnet(\\d+)");
  std::smatch m;
  if (std::regex_match(name, m, resnet)) {
    const int depth = std::stoi(m[1]);
    if (depth >= 8 && (depth - 2) % 6 == 0) return std::make_shared<ResNetCifar>(depth, input);
  }
  std::vector<std::string> names;
  for (const auto& info : list_models()) names.push_back(info.name);
  throw Error("unknown model '" + name + "'" + did_you_mean(name, names) +
              "; `fractrain models` lists the models (CIFAR ResNets take any depth 6n+2)");
}

std::shared_ptr<QuantizedModel> create_gated_model(const std::string& name, const ModelInputSpec& input,
                                                   const OptionSet& options, GateExecution execution) {
  create_model(name, input);  // the same name check and message
  static const std::regex resnet("resnet(\\d+)");
  std::smatch m;
  if (std::regex_match(name, m, resnet))
    return std::make_shared<GatedResNetCifar>(std::stoi(m[1]), input, options, execution);
  throw Error("model '" + name + "' has no gated form for DFQ/FracTrain yet; gated models: the CIFAR ResNets "
              "(resnet20, resnet38, ...)");
}

}  // namespace fractrain
