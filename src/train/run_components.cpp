#include "fractrain/train/run_components.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "fractrain/data/dataset_split.h"
#include "fractrain/data/datasets.h"
#include "fractrain/data/image_folder_loader.h"
#include "fractrain/models/model_registry.h"
#include "fractrain/nn/batch_norm.h"
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

namespace {

// data.dataset = image-folder: the file lists of both splits, decoded on demand by data.workers threads.
RunData load_image_folder(const DataConfig& data, uint64_t seed) {
  if (data.path.empty())
    throw Error("data.dataset = image-folder needs data.path: the folder holding " + data.train_folder + "/ and " +
                data.val_folder + "/, each with one sub-folder of images per class");
  if (data.split != "all")
    throw Error("data.split = " + data.split + " is not available for image-folder datasets (only for the in-memory "
                "ones); make the two halves as two folders instead, or use data.split = all");
  ImageFolderSettings settings;
  settings.transform.crop_size = data.image_size;
  settings.transform.resize_size = data.resize_size;
  settings.transform.min_scale = data.min_crop_scale;
  settings.transform.horizontal_flip = data.horizontal_flip;
  settings.workers = data.workers > 0 ? data.workers : std::max(1u, std::thread::hardware_concurrency());
  settings.skip_corrupt = data.skip_corrupt;
  check_transform_config(settings.transform);
  const std::filesystem::path root(data.path);
  const ImageFolderIndex train = scan_image_folder((root / data.train_folder).string(), true);
  const ImageFolderIndex val = scan_image_folder((root / data.val_folder).string(), true);
  check_same_classes(train, val);
  for (const ImageFolderIndex* index : {&train, &val}) {
    if (index->ignored_files > 0)
      std::printf("note: %s: ignored %lld file(s) without a .jpg, .jpeg or .png extension, e.g. %s\n",
                  index->dir.c_str(), (long long)index->ignored_files, index->ignored_example.c_str());
  }
  RunData out;
  for (int64_t c = 0; c < static_cast<int64_t>(train.classes.size()); ++c) out.classes.push_back(c);
  out.train = std::make_shared<const ImageFolderSplit>(
      "image-folder", std::make_shared<const ImageFolderIndex>(take_subset(train, data.train_subset, seed)), settings);
  out.test = std::make_shared<const ImageFolderSplit>(
      "image-folder", std::make_shared<const ImageFolderIndex>(take_subset(val, data.test_subset, seed + 1)), settings);
  return out;
}

}  // namespace

RunData load_run_data(const DataConfig& data, uint64_t seed) {
  if (data.dataset == "image-folder") return load_image_folder(data, seed);
  RunData out;
  const DatasetSplit split = parse_dataset_split(data.split, data.split_seed);
  const ImageDataset full_train = load_image_dataset(data.dataset, data.path, Split::Train);
  out.classes = split_classes(split, full_train.num_classes);
  auto train = apply_split(full_train, split, Split::Train);
  auto test = apply_split(load_image_dataset(data.dataset, data.path, Split::Test), split, Split::Test);
  AugmentConfig augment;
  augment.crop_padding = static_cast<int>(data.crop_padding);
  augment.horizontal_flip = data.horizontal_flip;
  out.train = std::make_shared<const InMemorySplit>(
      std::make_shared<const ImageDataset>(take_subset(train, data.train_subset, seed)), augment);
  out.test = std::make_shared<const InMemorySplit>(
      std::make_shared<const ImageDataset>(take_subset(test, data.test_subset, seed + 1)), augment);
  return out;
}

ModelInputSpec input_spec_of(const ImageDataset& data) {
  return ModelInputSpec{data.channels(), data.height(), data.width(), data.num_classes};
}

ModelInputSpec input_spec_of(const DataSplit& data) {
  const auto shape = data.sample_shape();
  return ModelInputSpec{shape[0], shape[1], shape[2], data.num_classes()};
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
  settings.snap_zero_point = effective_snap_zero_point(precision);
  settings.execution = precision.execution;
  settings.error_weight_ranges = effective_error_weight_ranges(precision);
  settings.noise_seed = seed;
  return settings;
}

Precision static_precision_of(const PrecisionConfig& precision) {
  Precision p = Precision::fw_bw(precision.fw, precision.bw);
  if (precision.weight_bits != 0) p.weight = precision.weight_bits;
  return p;
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
  auto model = is_gated(config.precision.mode)
                   ? create_gated_model(config.model.name, input, dfq_option_set(config), config.dfq.execution)
                   : create_model(config.model.name, input, transformer_options_of(config.model));
  model->set_quantizer_settings(quantizer_settings_of(config.precision, config.train.seed));
  set_fused_batch_norm(*model, config.train.fused_batch_norm);
  model->to(device);
  return model;
}

}  // namespace fractrain
