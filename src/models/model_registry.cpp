#include "fractrain/models/model_registry.h"

#include <functional>
#include <optional>
#include <regex>

#include "fractrain/models/gated_model.h"
#include "fractrain/util/did_you_mean.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

struct GateSettings {
  const OptionSet& options;
  GateExecution execution;
};

// One model: its name and description, how to build it, and how to build its gated form (empty: none).
struct ModelEntry {
  ModelInfo info;
  std::function<std::shared_ptr<QuantizedModel>(const ModelInputSpec&, const TransformerLmOptions&)> make;
  std::function<std::shared_ptr<QuantizedModel>(const ModelInputSpec&, const GateSettings&)> make_gated;
};

ModelEntry resnet_entry(const std::string& name, const std::string& description, const ResNetLayout& layout) {
  return {{name, description, true},
          [layout](const ModelInputSpec& input, const TransformerLmOptions&) {
            return std::make_shared<ResNet>(layout, input);
          },
          [layout](const ModelInputSpec& input, const GateSettings& gate) {
            return std::make_shared<GatedResNet>(gate.options, gate.execution, layout, input);
          }};
}

ModelEntry cifar_resnet_entry(int depth) {
  const int n = (depth - 2) / 6;
  return resnet_entry("resnet" + std::to_string(depth),
                      "CIFAR ResNet-" + std::to_string(depth) + ": 3 stages x " + std::to_string(n) +
                          " BasicBlocks, 16/32/64 channels",
                      cifar_resnet_layout(depth));
}

// The listed models, in the order `fractrain models` prints them.
const std::vector<ModelEntry>& model_table() {
  static const std::vector<ModelEntry> table = [] {
    std::vector<ModelEntry> t;
    for (int depth : {20, 38, 74, 110, 164}) t.push_back(cifar_resnet_entry(depth));
    t.push_back({{"mobilenetv2",
                  "MobileNetV2, CIFAR variant (stride 1 in the stem and stage 2); depthwise convs at FW-8/BW-16", true},
                 [](const ModelInputSpec& input, const TransformerLmOptions&) {
                   return std::make_shared<MobileNetV2>(input);
                 },
                 [](const ModelInputSpec& input, const GateSettings& gate) {
                   return std::make_shared<GatedMobileNetV2>(gate.options, gate.execution, input);
                 }});
    t.push_back(resnet_entry("resnet18",
                             "ImageNet ResNet-18: 7x7 stem, max pool, 4 stages x 2 BasicBlocks, 64..512 channels",
                             imagenet_resnet_layout(18)));
    t.push_back(resnet_entry("resnet34",
                             "ImageNet ResNet-34: 7x7 stem, max pool, stages of 3/4/6/3 BasicBlocks, 64..512 channels",
                             imagenet_resnet_layout(34)));
    t.push_back({{"transformer-lm",
                  "causal Transformer language model (token datasets); sized by model.layers, model.width, "
                  "model.heads, model.ffn_width (default 6 x 512, 8 heads, 2048)",
                  false},
                 [](const ModelInputSpec& input, const TransformerLmOptions& transformer) {
                   return std::make_shared<TransformerLm>(input, transformer);
                 },
                 nullptr});
    return t;
  }();
  return table;
}

// A listed model, or any other CIFAR ResNet depth 6n+2 (resnet8, resnet56, ...).
std::optional<ModelEntry> find_model(const std::string& name) {
  for (const auto& e : model_table())
    if (e.info.name == name) return e;
  static const std::regex resnet("resnet(\\d{1,4})");
  std::smatch m;
  if (!std::regex_match(name, m, resnet)) return std::nullopt;
  const int depth = std::stoi(m[1]);
  if (depth >= 8 && (depth - 2) % 6 == 0) return cifar_resnet_entry(depth);
  return std::nullopt;
}

ModelEntry model_named(const std::string& name) {
  if (auto entry = find_model(name)) return *entry;
  std::vector<std::string> names;
  for (const auto& e : model_table()) names.push_back(e.info.name);
  throw Error("unknown model '" + name + "'" + did_you_mean(name, names) +
              "; `fractrain models` lists the models (CIFAR ResNets take any depth 6n+2)");
}

}  // namespace

std::vector<ModelInfo> list_models() {
  std::vector<ModelInfo> models;
  for (const auto& e : model_table()) models.push_back(e.info);
  return models;
}

std::shared_ptr<QuantizedModel> create_model(const std::string& name, const ModelInputSpec& input,
                                             const TransformerLmOptions& transformer) {
  return model_named(name).make(input, transformer);
}

std::shared_ptr<QuantizedModel> create_gated_model(const std::string& name, const ModelInputSpec& input,
                                                   const OptionSet& options, GateExecution execution) {
  const ModelEntry entry = model_named(name);
  if (!entry.make_gated)
    throw Error("precision modes dfq and fractrain are not supported for " + name +
                " (it has no DFQ gates; docs/transformer.md says how they would apply); use precision.mode = static, "
                "pfq-manual or pfq-auto");
  return entry.make_gated(input, GateSettings{options, execution});
}

}  // namespace fractrain
