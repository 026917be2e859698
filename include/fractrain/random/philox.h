#pragma once
// Counter-based random numbers: the generator (philox_block.h) and what host code builds on it.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "fractrain/random/philox_block.h"

namespace fractrain {

// Fisher-Yates from the front over the first n slots: draw i (element i of `rng`) decides which of slots
// i..end lands in slot i, so items[0, n) ends as a uniform random n-subset in random order (n = size: a full
// shuffle). A pure function of (rng, items, n).
template <typename T>
void shuffle_front(std::vector<T>& items, size_t n, const PhiloxStream& rng) {
  for (size_t i = 0; i < n && i + 1 < items.size(); ++i)
    std::swap(items[i], items[i + static_cast<size_t>(rng.below(i, items.size() - i))]);
}

}  // namespace fractrain
