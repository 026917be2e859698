#pragma once
// Turning a RunConfig into the things a run is made of: device, threads, datasets, model, quantizer settings.
#include <c10/core/Device.h>

#include <memory>

#include "fractrain/data/data_split.h"
#include "fractrain/data/image_dataset.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/models/transformer_lm.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/train/run_config.h"

namespace fractrain {

// "cpu", "cuda", "cuda:1". Throws fractrain::Error when CUDA is asked for but this LibTorch has none.
c10::Device resolve_device(const std::string& name);

// Sets LibTorch's intra-op threads (0 = all cores) and returns the number used.
int configure_threads(int64_t requested);

struct RunData {
  std::shared_ptr<const DataSplit> train, test;
  std::vector<int64_t> classes;  // the dataset's class ids behind labels 0..n-1 (all but for a class split)
};
// Loads both splits (in memory, or for data.dataset = image-folder the scanned file lists of
// data.path/train_folder and data.path/val_folder), keeps the half data.split names (dataset_split.h; in-memory
// datasets only), and takes the configured seeded subsets.
RunData load_run_data(const DataConfig& data, uint64_t seed);

ModelInputSpec input_spec_of(const ImageDataset& data);
ModelInputSpec input_spec_of(const DataSplit& data);
QuantizationPolicy quantization_policy_of(const PrecisionConfig& precision);
QuantizerSettings quantizer_settings_of(const PrecisionConfig& precision, uint64_t seed);
Precision static_precision_of(const PrecisionConfig& precision);

TransformerLmOptions transformer_options_of(const ModelConfig& model);

// Builds the model (weights initialised from the run seed), moved to `device`, with quantizer settings.
std::shared_ptr<QuantizedModel> build_model(const RunConfig& config, const ModelInputSpec& input, c10::Device device);

}  // namespace fractrain
