#include "fractrain/data/batch_loader.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>
#include <string>

#include "fractrain/random/philox.h"
#include "fractrain/util/error.h"
#include "fractrain/util/helper_thread_openmp.h"

namespace fractrain {

BatchLoader::BatchLoader(std::shared_ptr<const ImageDataset> data, int64_t batch_size, bool shuffle, bool drop_last,
                         AugmentConfig aug, bool augment, uint64_t seed, BatchShard shard)
    : data_(std::move(data)),
      batch_size_(batch_size),
      shuffle_(shuffle),
      drop_last_(drop_last),
      aug_(aug),
      augment_(augment),
      seed_(seed),
      shard_(shard) {
  if (!data_) throw Error("BatchLoader: no dataset given");
  if (shard_.count < 1 || shard_.index < 0 || shard_.index >= shard_.count)
    throw Error("BatchLoader: shard " + std::to_string(shard_.index) + " of " + std::to_string(shard_.count) +
                " does not exist");
  const std::string name = "dataset '" + data_->name + "'";
  if (batch_size_ <= 0) throw Error("batch size " + std::to_string(batch_size_) + " must be positive");
  if (data_->size() == 0) throw Error(name + " is empty: there is nothing to train or evaluate on");
  if (!data_->labels.defined() || data_->labels.scalar_type() != at::kLong || data_->labels.dim() != 1 ||
      data_->labels.size(0) != data_->size()) {
    throw Error(name + ": labels must be an int64 tensor [" + std::to_string(data_->size()) + "], one per image");
  }
  if (drop_last_ && data_->size() < batch_size_) {
    throw Error(name + " has " + std::to_string(data_->size()) + " samples, fewer than one batch of " +
                std::to_string(batch_size_) + ", so dropping the last partial batch leaves no batches; use a smaller "
                "batch size or keep the last batch");
  }
  if (aug_.crop_padding < 0) {
    throw Error("crop_padding = " + std::to_string(aug_.crop_padding) + " must be >= 0 (0 disables the random crop)");
  }
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_worker_.notify_all();
  if (worker_.joinable()) worker_.join();
}

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t n = data_->size();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

std::vector<int64_t> BatchLoader::epoch_order(int64_t epoch) const {
  return epoch_sample_order(data_->size(), shuffle_, seed_, epoch);
}

std::shared_ptr<const std::vector<int64_t>> BatchLoader::cached_order(int64_t epoch) const {
  {
    std::lock_guard<std::mutex> lock(order_mutex_);
    const auto it = orders_.find(epoch);
    if (it != orders_.end()) return it->second;
  }
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));  // outside the lock: O(N)
  std::lock_guard<std::mutex> lock(order_mutex_);
  orders_[epoch] = order;
  while (orders_.size() > 2) orders_.erase(orders_.begin());  // drop the oldest epoch
  return order;
}

void BatchLoader::seek(int64_t epoch, int64_t batch_in_epoch) {
  if (epoch < 0 || batch_in_epoch < 0 || batch_in_epoch >= batches_per_epoch()) {
    throw Error("cannot resume the data loader at epoch " + std::to_string(epoch) + ", batch " +
                std::to_string(batch_in_epoch) + ": an epoch has batches 0.." + std::to_string(batches_per_epoch() - 1) +
                "; the checkpoint was made with another dataset size or batch size");
  }
  cursor_epoch_ = epoch;
  cursor_batch_ = batch_in_epoch;
}

Batch BatchLoader::get(int64_t epoch, int64_t batch_in_epoch) const {
  if (epoch < 0 || batch_in_epoch < 0 || batch_in_epoch >= batches_per_epoch()) {
    throw Error("batch " + std::to_string(batch_in_epoch) + " of epoch " + std::to_string(epoch) +
                " does not exist: an epoch has batches 0.." + std::to_string(batches_per_epoch() - 1));
  }
  const auto order = cached_order(epoch);
  const auto [begin, end] =
      shard_.of(batch_in_epoch * batch_size_, std::min(data_->size(), (batch_in_epoch + 1) * batch_size_));
  std::vector<int64_t> indices(order->begin() + begin, order->begin() + end);

  Batch batch;
  batch.images = assemble_batch(*data_, indices, aug_, augment_, seed_, static_cast<uint64_t>(epoch));
  batch.labels = data_->labels.index_select(0, at::from_blob(indices.data(), {end - begin}, at::kLong));
  batch.epoch = epoch;
  batch.batch_in_epoch = batch_in_epoch;
  return batch;
}

void BatchLoader::start_worker_once() {
  if (!worker_.joinable()) worker_ = std::thread([this] { worker_loop(); });
}

void BatchLoader::worker_loop() {
  // The prefetch runs while the training step runs on every core: its ATen ops take this thread only.
  run_parallel_loops_on_this_thread_only();
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_worker_.wait(lock, [this] { return stop_ || has_request_; });
    if (stop_) return;
    const int64_t epoch = request_epoch_, batch_in_epoch = request_batch_;
    has_request_ = false;
    busy_ = true;
    lock.unlock();

    Batch batch;
    std::exception_ptr error;
    try {
      batch = get(epoch, batch_in_epoch);
    } catch (...) {
      error = std::current_exception();
    }

    lock.lock();
    busy_ = false;
    has_result_ = true;
    result_epoch_ = epoch;
    result_batch_ = batch_in_epoch;
    result_ = std::move(batch);
    result_error_ = error;
    work_done_.notify_all();
  }
}

Batch BatchLoader::next() {
  start_worker_once();
  const int64_t epoch = cursor_epoch_, batch_in_epoch = cursor_batch_;
  Batch batch;
  bool prefetched = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    // Finish any work in flight; a result for another position (after a seek) is simply discarded.
    work_done_.wait(lock, [this] { return !has_request_ && !busy_; });
    if (has_result_ && result_epoch_ == epoch && result_batch_ == batch_in_epoch) {
      if (result_error_) {
        std::exception_ptr error = result_error_;
        has_result_ = false;
        result_error_ = nullptr;
        std::rethrow_exception(error);
      }
      batch = std::move(result_);
      prefetched = true;
    }
    has_result_ = false;
    result_ = Batch{};
  }
  if (!prefetched) batch = get(epoch, batch_in_epoch);

  cursor_batch_ = batch_in_epoch + 1;
  cursor_epoch_ = epoch;
  if (cursor_batch_ == batches_per_epoch()) {
    cursor_batch_ = 0;
    ++cursor_epoch_;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    request_epoch_ = cursor_epoch_;
    request_batch_ = cursor_batch_;
    has_request_ = true;
  }
  wake_worker_.notify_one();
  return batch;
}

}  // namespace fractrain
