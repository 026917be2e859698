#pragma once
// An in-memory image classification dataset: raw uint8 pixels plus the per-channel statistics used to
// normalise them. Pixels stay uint8 (4x smaller than float) until a batch is assembled, so CIFAR-10's
// 50000 training images take 150 MB instead of 600 MB.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fractrain {

struct ImageDataset {
  std::string name;          // "fashion-mnist", "cifar10", ... (for messages and reports)
  at::Tensor images;         // uint8 [N, C, H, W], CPU, contiguous
  at::Tensor labels;         // int64 [N], each in [0, num_classes)
  int64_t num_classes = 0;
  std::vector<float> mean;   // per channel, in [0, 1] pixel units (pixel / 255)
  std::vector<float> stddev; // per channel, same units

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  int64_t channels() const { return images.defined() ? images.size(1) : 0; }
  int64_t height() const { return images.defined() ? images.size(2) : 0; }
  int64_t width() const { return images.defined() ? images.size(3) : 0; }
};

// A seeded random subset of n samples (all classes mixed, no stratification), kept in the original order so
// that a subset of a subset is still sorted. n <= 0 or n >= size() returns the whole dataset (sharing its
// tensors). The choice depends only on (seed, size(), n).
ImageDataset take_subset(const ImageDataset& data, int64_t n, uint64_t seed);

// The sample indices take_subset keeps: n of 0..total-1 drawn by (seed, total, n), sorted (0 < n < total).
std::vector<int64_t> random_subset_indices(int64_t total, int64_t n, uint64_t seed);

}  // namespace fractrain
