#include "fractrain/models/model_registry.h"

#include <optional>
#include <regex>

#include "fractrain/models/gated_mobilenet_v2.h"
#include "fractrain/models/gated_resnet.h"
#include "fractrain/models/mobilenet_v2.h"
#include "fractrain/util/did_you_mean.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

// resnet18 and resnet34 are the ImageNet layouts; any other resnetN with N = 6n+2 the CIFAR layout.
std::optional<ResNetLayout> resnet_layout(const std::string& name) {
  static const std::regex resnet("resnet(\\d{1,4})");
  std::smatch m;
  if (!std::regex_match(name, m, resnet)) return std::nullopt;
  const int depth = std::stoi(m[1]);
  if (depth == 18 || depth == 34) return imagenet_resnet_layout(depth);
  if (depth >= 8 && (depth - 2) % 6 == 0) return cifar_resnet_layout(depth);
  return std::nullopt;
}

[[noreturn]] void unknown_model(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& info : list_models()) names.push_back(info.name);
  throw Error("unknown model '" + name + "'" + did_you_mean(name, names) +
              "; `fractrain models` lists the models (CIFAR ResNets take any depth 6n+2)");
}

}  // namespace

std::vector<ModelInfo> list_models() {
  std::vector<ModelInfo> models;
  for (int depth : {20, 38, 74, 110, 164}) {
    const int n = (depth - 2) / 6;
    models.push_back({"resnet" + std::to_string(depth),
                      "CIFAR ResNet-" + std::to_string(depth) + ": 3 stages x " + std::to_string(n) +
                          " BasicBlocks, 16/32/64 channels"});
  }
  models.push_back({"mobilenetv2", "MobileNetV2, CIFAR variant (stride 1 in the stem and stage 2); depthwise convs at FW-8/BW-16"});
  models.push_back({"resnet18", "ImageNet ResNet-18: 7x7 stem, max pool, 4 stages x 2 BasicBlocks, 64..512 channels"});
  models.push_back({"resnet34", "ImageNet ResNet-34: 7x7 stem, max pool, stages of 3/4/6/3 BasicBlocks, 64..512 channels"});
  models.push_back({"transformer-lm", "causal Transformer language model (token datasets); sized by model.layers, "
                                      "model.width, model.heads, model.ffn_width (default 6 x 512, 8 heads, 2048)"});
  return models;
}

std::shared_ptr<QuantizedModel> create_model(const std::string& name, const ModelInputSpec& input,
                                             const TransformerLmOptions& transformer) {
  if (name == "mobilenetv2") return std::make_shared<MobileNetV2>(input);
  if (name == "transformer-lm") return std::make_shared<TransformerLm>(input, transformer);
  const auto layout = resnet_layout(name);
  if (!layout) unknown_model(name);
  return std::make_shared<ResNet>(*layout, input);
}

std::shared_ptr<QuantizedModel> create_gated_model(const std::string& name, const ModelInputSpec& input,
                                                   const OptionSet& options, GateExecution execution) {
  if (name == "mobilenetv2") return std::make_shared<GatedMobileNetV2>(input, options, execution);
  if (name == "transformer-lm")
    throw Error("precision modes dfq and fractrain are not supported for transformer-lm (it has no DFQ gates; "
                "docs/transformer.md says how they would apply); use precision.mode = static, pfq-manual or pfq-auto");
  const auto layout = resnet_layout(name);
  if (!layout) unknown_model(name);
  return std::make_shared<GatedResNet>(*layout, input, options, execution);
}

}  // namespace fractrain
