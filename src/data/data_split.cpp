#include "fractrain/data/data_split.h"

#include <nlohmann/json.hpp>

#include <numeric>

#include "fractrain/data/batch_loader.h"
#include "fractrain/random/philox.h"

namespace fractrain {

namespace {
// Keeps the shuffle stream apart from the augmentation streams and any other user of the run seed.
constexpr uint64_t kShufflePurpose = 0x53687566666c6521ull;  // "Shuffle!"
}  // namespace

std::vector<int64_t> epoch_sample_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!shuffle || n < 2) return order;
  // Fisher-Yates from the back; draw i decides which of the first i+1 slots lands in slot i.
  const PhiloxStream rng{seed, mix_stream(static_cast<uint64_t>(epoch), kShufflePurpose)};
  for (size_t i = order.size() - 1; i > 0; --i) {
    const size_t j = static_cast<size_t>(rng.below(i, i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

nlohmann::json DataSplit::report() const { return nullptr; }

std::unique_ptr<BatchSource> InMemorySplit::make_loader(const LoaderOptions& o) const {
  return std::make_unique<BatchLoader>(data_, o.batch_size, o.shuffle, o.drop_last, augment_, o.augment, o.seed, o.shard);
}

}  // namespace fractrain
