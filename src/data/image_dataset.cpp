#include "fractrain/data/image_dataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

#include "fractrain/random/philox.h"

namespace fractrain {

namespace {
// Separates the subset draw from every other consumer of the run seed (shuffles, augmentation).
constexpr uint64_t kSubsetStream = 0x5375627365744964ull;  // "SubsetId"
}  // namespace

std::vector<int64_t> random_subset_indices(int64_t total, int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(total));
  std::iota(order.begin(), order.end(), int64_t{0});
  const PhiloxStream rng{seed, mix_stream(kSubsetStream, static_cast<uint64_t>(total))};
  shuffle_front(order, static_cast<size_t>(n), rng);
  order.resize(static_cast<size_t>(n));
  std::sort(order.begin(), order.end());
  return order;
}

ImageDataset take_subset(const ImageDataset& data, int64_t n, uint64_t seed) {
  const int64_t total = data.size();
  if (n <= 0 || n >= total) return data;
  std::vector<int64_t> order = random_subset_indices(total, n, seed);
  const at::Tensor index = at::from_blob(order.data(), {n}, at::kLong);
  ImageDataset subset = data;
  subset.images = data.images.index_select(0, index).contiguous();
  subset.labels = data.labels.index_select(0, index).contiguous();
  return subset;
}

}  // namespace fractrain
