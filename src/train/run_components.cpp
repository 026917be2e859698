#include "fractrain/train/run_components.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <thread>

#include "fractrain/data/datasets.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/util/error.h"

namespace fractrain {

c10::Device resolve_device(const std::string& name) {
  c10::Device device = c10::kCPU;
  try {
    device = c10::Device(name);
  } catch (const std::exception&) {
    throw Error("train.device = '" + name + "' is not a device: use cpu, cuda or cuda:N");
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available())
      throw Error("train.device = '" + name +
                  "' but this LibTorch has no CUDA or no GPU is visible; use train.device=cpu, or build against a "
                  "CUDA LibTorch (see README)");
    if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count()))
      throw Error("train.device = '" + name + "' but only " + std::to_string(torch::cuda::device_count()) +
                  " GPU(s) are visible");
  } else if (!device.is_cpu()) {
    throw Error("train.device = '" + name + "' is not supported: use cpu or cuda[:N]");
  }
  return device;
}

int configure_threads(int64_t requested) {
  const int threads = requested > 0 ? static_cast<int>(requested)
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return threads;
}

RunData load_run_data(const DataConfig& data, uint64_t seed) {
  RunData out;
  auto train = load_image_dataset(data.dataset, data.path, Split::Train);
  auto test = load_image_dataset(data.dataset, data.path, Split::Test);
  out.train = std::make_shared<const ImageDataset>(take_subset(train, data.train_subset, seed));
  out.test = std::make_shared<const ImageDataset>(take_subset(test, data.test_subset, seed + 1));
  return out;
}

ModelInputSpec input_spec_of(const ImageDataset& data) {
  return ModelInputSpec{data.channels(), data.height(), data.width(), data.num_classes};
}

QuantizationPolicy quantization_policy_of(const PrecisionConfig& precision) {
  QuantizationPolicy policy;
  policy.quantize_first_layer = precision.quantize_first_layer;
  policy.quantize_classifier = precision.quantize_classifier;
  return policy;
}

QuantizerSettings quantizer_settings_of(const PrecisionConfig& precision, uint64_t seed) {
  QuantizerSettings settings;
  settings.activation_momentum = static_cast<float>(precision.activation_momentum);
  settings.snap_zero_point = precision.snap_zero_point;
  settings.noise_seed = seed;
  return settings;
}

Precision static_precision_of(const PrecisionConfig& precision) {
  return Precision::fw_bw(precision.fw, precision.bw);
}

TransformerLmOptions transformer_options_of(const ModelConfig& model) {
  TransformerLmOptions o;
  o.layers = model.layers;
  o.width = model.width;
  o.heads = model.heads;
  o.ffn_width = model.ffn_width;
  o.dropout = model.dropout;
  o.tie_embeddings = model.tie_embeddings;
  o.pre_norm = model.pre_norm;
  return o;
}

std::shared_ptr<QuantizedModel> build_model(const RunConfig& config, const ModelInputSpec& input, c10::Device device) {
  if (input.sequence_length > 0 && config.model.name != "transformer-lm")
    throw Error("data.dataset = " + config.data.dataset + " is a token corpus and model.name = " + config.model.name +
                " an image model: use model.name = transformer-lm");
  torch::manual_seed(config.train.seed);
  auto model = is_dynamic_mode(config.precision.mode)
                   ? create_gated_model(config.model.name, input, OptionSet::parse(config.dfq.options, config.dfq.weight_bits),
                                        parse_gate_execution(config.dfq.execution))
                   : create_model(config.model.name, input, transformer_options_of(config.model));
  model->set_quantizer_settings(quantizer_settings_of(config.precision, config.train.seed));
  model->to(device);
  return model;
}

}  // namespace fractrain
