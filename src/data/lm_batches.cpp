#include "fractrain/data/lm_batches.h"

#include <ATen/ATen.h>

#include <numeric>
#include <random>

#include "fractrain/util/error.h"

namespace fractrain {

LmBatches::LmBatches(const at::Tensor& stream, int64_t streams, int64_t window, bool shuffle, bool keep_last_partial,
                     uint64_t seed, const std::string& what)
    : streams_(streams), window_(window), shuffle_(shuffle), seed_(seed) {
  if (streams < 1 || window < 1)
    throw Error("language-model batches: batch size " + std::to_string(streams) + " and sequence length " +
                std::to_string(window) + " must both be >= 1");
  if (!stream.defined() || stream.dim() != 1)
    throw Error("language-model batches: " + what + " is not a 1-D token stream");
  const int64_t n = stream.size(0);
  columns_ = n / streams;
  const int64_t needed = keep_last_partial ? 2 : window + 1;
  if (columns_ < needed)
    throw Error(what + " has " + std::to_string(n) + " tokens: too few for " + std::to_string(streams) +
                " parallel streams of at least " + std::to_string(needed) + " tokens each (train.batch_size x " +
                (keep_last_partial ? "2" : "(data.sequence_length + 1)") +
                "); lower train.batch_size or data.sequence_length, or use a larger corpus");
  matrix_ = stream.slice(0, 0, streams * columns_).to(at::kLong).view({streams, columns_}).contiguous();
  const int64_t positions = columns_ - 1;  // the last token of each stream is only a target
  windows_ = keep_last_partial ? (positions + window - 1) / window : positions / window;
}

std::vector<int64_t> LmBatches::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(windows_));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!shuffle_) return order;
  // std::mt19937_64's output is fixed by the standard (unlike the distributions), so the order is portable.
  std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 0x4C4D42ull);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

LmBatch LmBatches::get(int64_t epoch, int64_t batch_in_epoch) const {
  if (batch_in_epoch < 0 || batch_in_epoch >= windows_)
    throw Error("language-model batches: batch " + std::to_string(batch_in_epoch) + " of an epoch of " +
                std::to_string(windows_));
  if (cached_epoch_ != epoch) {
    cached_order_ = epoch_order(epoch);
    cached_epoch_ = epoch;
  }
  const int64_t start = cached_order_[static_cast<size_t>(batch_in_epoch)] * window_;
  const int64_t length = std::min(window_, columns_ - 1 - start);
  LmBatch b;
  b.inputs = matrix_.slice(1, start, start + length).contiguous();
  b.targets = matrix_.slice(1, start + 1, start + 1 + length).contiguous();
  b.epoch = epoch;
  b.batch_in_epoch = batch_in_epoch;
  return b;
}

void LmBatches::seek(int64_t epoch, int64_t batch_in_epoch) {
  epoch_ = epoch + batch_in_epoch / windows_;
  batch_ = batch_in_epoch % windows_;
}

LmBatch LmBatches::next() {
  LmBatch b = get(epoch_, batch_);
  if (++batch_ == windows_) {
    batch_ = 0;
    ++epoch_;
  }
  return b;
}

}  // namespace fractrain
