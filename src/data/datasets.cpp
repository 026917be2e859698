#include "fractrain/data/datasets.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <functional>

#include "fractrain/data/cifar_reader.h"
#include "fractrain/data/idx_reader.h"
#include "fractrain/util/error.h"

namespace fractrain {

namespace {

namespace fs = std::filesystem;

// Everything that differs between the datasets we know: where they live, how to get them, and their
// published per-channel statistics (mean and standard deviation of the training pixels / 255).
struct DatasetSpec {
  const char* name;
  const char* default_dir;
  const char* how_to_get;  // completes "... not found ...; <how_to_get>"
  int64_t num_classes;
  std::vector<float> mean, stddev;
};

const std::vector<DatasetSpec>& dataset_specs() {
  static const std::vector<DatasetSpec> specs = {
      {"fashion-mnist", "/usr/share/datasets/fashion-mnist",
       "install it with `apt-get install dataset-fashion-mnist`, or download the four IDX files from "
       "https://github.com/zalandoresearch/fashion-mnist and pass their folder as the data directory",
       10, {0.2860f}, {0.3530f}},
      {"mnist", "/usr/share/datasets/mnist",
       "download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
       "t10k-labels-idx1-ubyte.gz from http://yann.lecun.com/exdb/mnist/ (mirror: "
       "https://ossci-datasets.s3.amazonaws.com/mnist/) and pass their folder as the data directory (default "
       "/usr/share/datasets/mnist)",
       10, {0.1307f}, {0.3081f}},
      {"cifar10", "data/cifar-10-batches-bin",
       "download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz and run `tar xzf cifar-10-binary.tar.gz "
       "-C data` (it creates data/cifar-10-batches-bin), or pass the folder holding the .bin files as the data "
       "directory",
       10, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}},
      {"cifar100", "data/cifar-100-binary",
       "download https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz and run `tar xzf "
       "cifar-100-binary.tar.gz -C data` (it creates data/cifar-100-binary), or pass the folder holding train.bin "
       "and test.bin as the data directory",
       100, {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}},
  };
  return specs;
}

std::string valid_names() {
  std::string out;
  for (const auto& spec : dataset_specs()) out += (out.empty() ? "" : ", ") + std::string(spec.name);
  return out;
}

const DatasetSpec& find_spec(const std::string& name) {
  for (const auto& spec : dataset_specs()) {
    if (name == spec.name) return spec;
  }
  throw Error("unknown image dataset '" + name + "'; valid names: " + valid_names() +
              ", or image-folder for an ImageNet-style folder of JPEGs (set data.path)");
}

bool is_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

// Reader errors say what is wrong with a file; this adds the dataset-specific way to get a good copy.
template <typename F>
auto with_remedy(const DatasetSpec& spec, F&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (" + spec.name + ": " + spec.how_to_get + ")");
  }
}

// The IDX file for one part ("images" or "labels"), preferring the gzipped name as distributed.
std::string find_idx_file(const DatasetSpec& spec, const fs::path& dir, Split split, const std::string& part) {
  const std::string stem = std::string(split == Split::Train ? "train" : "t10k") + "-" + part +
                           (part == "images" ? "-idx3-ubyte" : "-idx1-ubyte");
  const fs::path gz = dir / (stem + ".gz"), raw = dir / stem;
  if (is_file(gz)) return gz.string();
  if (is_file(raw)) return raw.string();
  throw Error(std::string(spec.name) + " " + split_name(split) + " " + part + " not found: looked for " +
              gz.string() + " and " + raw.string() + "; " + spec.how_to_get);
}

ImageDataset load_idx_dataset(const DatasetSpec& spec, const fs::path& dir, Split split) {
  const std::string images_path = find_idx_file(spec, dir, split, "images");
  const std::string labels_path = find_idx_file(spec, dir, split, "labels");
  ImageDataset data;
  data.images = with_remedy(spec, [&] { return read_idx_images(images_path); });
  data.labels = with_remedy(spec, [&] { return read_idx_labels(labels_path); });
  if (data.labels.size(0) != data.images.size(0)) {
    throw Error(labels_path + ": has " + std::to_string(data.labels.size(0)) + " labels but " + images_path +
                " has " + std::to_string(data.images.size(0)) + " images; the files come from different datasets "
                "or splits, or one is corrupt (" + spec.name + ": " + spec.how_to_get + ")");
  }
  const int64_t max_label = data.labels.max().item<int64_t>();
  if (max_label >= spec.num_classes) {
    const int64_t where = data.labels.argmax().item<int64_t>();
    throw Error(labels_path + ": label " + std::to_string(max_label) + " (sample " + std::to_string(where) +
                ") is out of range for " + spec.name + "'s " + std::to_string(spec.num_classes) +
                " classes; the file is corrupt or from another dataset (" + spec.name + ": " + spec.how_to_get + ")");
  }
  return data;
}

std::vector<std::string> cifar_file_names(CifarVariant variant, Split split) {
  if (variant == CifarVariant::Cifar100) return {split == Split::Train ? "train.bin" : "test.bin"};
  if (split == Split::Test) return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
}

ImageDataset load_cifar_dataset(const DatasetSpec& spec, const fs::path& dir, Split split) {
  const CifarVariant variant = spec.num_classes == 10 ? CifarVariant::Cifar10 : CifarVariant::Cifar100;
  const std::vector<std::string> names = cifar_file_names(variant, split);
  // The archive extracts to a subfolder, so accept both the folder itself and its parent.
  const std::vector<fs::path> folders = {dir, dir / (variant == CifarVariant::Cifar10 ? "cifar-10-batches-bin"
                                                                                       : "cifar-100-binary")};
  std::string missing_report;
  for (const fs::path& folder : folders) {
    std::vector<std::string> paths, missing;
    for (const std::string& name : names) {
      const fs::path path = folder / name;
      (is_file(path) ? paths : missing).push_back(path.string());
    }
    if (missing.empty()) {
      const CifarRecords records = with_remedy(spec, [&] { return read_cifar_files(paths, variant); });
      ImageDataset data;
      data.images = records.images;
      data.labels = records.labels;
      return data;
    }
    if (missing.size() < names.size()) {  // a partial copy: name exactly what is absent
      std::string list;
      for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
      throw Error(std::string(spec.name) + " " + split_name(split) + " split is incomplete: missing " + list +
                  "; " + spec.how_to_get);
    }
    missing_report += (missing_report.empty() ? "" : " or in ") + folder.string();
  }
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  throw Error(std::string(spec.name) + " " + split_name(split) + " split not found: expected " + list + " in " +
              missing_report + "; " + spec.how_to_get);
}

}  // namespace

const char* split_name(Split split) { return split == Split::Train ? "train" : "test"; }

std::vector<std::string> image_dataset_names() {
  std::vector<std::string> names;
  for (const auto& spec : dataset_specs()) names.emplace_back(spec.name);
  return names;
}

std::string default_data_dir(const std::string& name) { return find_spec(name).default_dir; }

ImageDataset load_image_dataset(const std::string& name, const std::string& dir, Split split) {
  const DatasetSpec& spec = find_spec(name);
  const fs::path folder = dir.empty() ? fs::path(spec.default_dir) : fs::path(dir);
  const bool is_cifar = name.rfind("cifar", 0) == 0;
  ImageDataset data = is_cifar ? load_cifar_dataset(spec, folder, split) : load_idx_dataset(spec, folder, split);
  data.name = spec.name;
  data.num_classes = spec.num_classes;
  data.mean = spec.mean;
  data.stddev = spec.stddev;
  return data;
}

}  // namespace fractrain
