#pragma once
// One split (train or test) of an image classification dataset, whatever holds it: in memory (the MNISTs,
// the CIFARs) or streamed from a folder of image files. A run asks it for its size and sample shape (to build
// the model) and for batch loaders (to train and evaluate).
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "fractrain/data/batch_source.h"
#include "fractrain/data/batch_transform.h"
#include "fractrain/data/image_dataset.h"

namespace fractrain {

class DataSplit {
 public:
  virtual ~DataSplit() = default;
  virtual std::string name() const = 0;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  // {C, H, W} of every sample a loader yields.
  virtual std::array<int64_t, 3> sample_shape() const = 0;
  virtual std::unique_ptr<BatchSource> make_loader(const LoaderOptions& options) const = 0;
  // What a run records about the split beyond its size (class names, skipped files); null when nothing.
  virtual nlohmann::json report() const;
};

// An ImageDataset in memory, batched by BatchLoader with the CIFAR-style augmentation `augment`.
class InMemorySplit : public DataSplit {
 public:
  InMemorySplit(std::shared_ptr<const ImageDataset> data, AugmentConfig augment)
      : data_(std::move(data)), augment_(augment) {}
  std::string name() const override { return data_->name; }
  int64_t size() const override { return data_->size(); }
  int64_t num_classes() const override { return data_->num_classes; }
  std::array<int64_t, 3> sample_shape() const override { return {data_->channels(), data_->height(), data_->width()}; }
  std::unique_ptr<BatchSource> make_loader(const LoaderOptions& options) const override;
  const ImageDataset& dataset() const { return *data_; }

 private:
  std::shared_ptr<const ImageDataset> data_;
  AugmentConfig augment_;
};

}  // namespace fractrain
