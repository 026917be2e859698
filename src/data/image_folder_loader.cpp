#include "fractrain/data/image_folder_loader.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>

#include "fractrain/data/image_codec.h"
#include "fractrain/util/error.h"

namespace fractrain {

void CorruptFileLog::record(int64_t file, const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (files_.insert(file).second) std::fprintf(stderr, "warning: skipping corrupt image: %s\n", message.c_str());
}

int64_t CorruptFileLog::count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(files_.size());
}

struct ImageFolderLoader::Pending {
  int64_t epoch = 0, batch_in_epoch = 0;
  std::vector<int64_t> indices;  // sample (file) index of each slot
  at::Tensor images, labels;     // written slot by slot by the workers
  int64_t remaining = 0;         // slots not finished yet (guarded by the loader's mutex_)
  std::exception_ptr error;      // the first failure (guarded by the loader's mutex_)
  std::atomic<bool> abandoned{false};  // after a seek or a failure: workers skip its remaining slots
};

ImageFolderLoader::ImageFolderLoader(std::shared_ptr<const ImageFolderIndex> index, ImageFolderSettings settings,
                                     LoaderOptions options, std::shared_ptr<CorruptFileLog> corrupt_log)
    : index_(std::move(index)),
      settings_(settings),
      options_(options),
      corrupt_log_(corrupt_log ? std::move(corrupt_log) : std::make_shared<CorruptFileLog>()) {
  if (!index_ || index_->size() == 0) throw Error("image folder loader: no image files to load");
  const std::string name = "image folder " + index_->dir;
  if (options_.batch_size <= 0) throw Error("batch size " + std::to_string(options_.batch_size) + " must be positive");
  if (options_.drop_last && index_->size() < options_.batch_size)
    throw Error(name + " has " + std::to_string(index_->size()) + " images, fewer than one batch of " +
                std::to_string(options_.batch_size) + ", so dropping the last partial batch leaves no batches; use a "
                "smaller batch size or more images");
  if (settings_.workers < 1) throw Error("data.workers = " + std::to_string(settings_.workers) + " must be >= 1 here");
  if (settings_.prefetch_batches < 0) throw Error("image folder loader: prefetch_batches must be >= 0");
  check_transform_config(settings_.transform);
}

ImageFolderLoader::~ImageFolderLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_workers_.notify_all();
  for (auto& w : workers_) w.join();
}

int64_t ImageFolderLoader::batches_per_epoch() const {
  const int64_t n = index_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void ImageFolderLoader::seek(int64_t epoch, int64_t batch_in_epoch) {
  if (epoch < 0 || batch_in_epoch < 0 || batch_in_epoch >= batches_per_epoch())
    throw Error("cannot resume the data loader at epoch " + std::to_string(epoch) + ", batch " +
                std::to_string(batch_in_epoch) + ": an epoch has batches 0.." + std::to_string(batches_per_epoch() - 1) +
                "; the checkpoint was made with another dataset size or batch size");
  cursor_epoch_ = epoch;
  cursor_batch_ = batch_in_epoch;
}

std::vector<int64_t> ImageFolderLoader::batch_indices(int64_t epoch, int64_t batch_in_epoch) const {
  std::shared_ptr<const std::vector<int64_t>> order;
  {
    std::lock_guard<std::mutex> lock(order_mutex_);
    const auto it = orders_.find(epoch);
    if (it != orders_.end()) order = it->second;
  }
  if (!order) {
    order = std::make_shared<const std::vector<int64_t>>(
        epoch_sample_order(index_->size(), options_.shuffle, options_.seed, epoch));
    std::lock_guard<std::mutex> lock(order_mutex_);
    orders_[epoch] = order;
    while (orders_.size() > 2) orders_.erase(orders_.begin());
  }
  const auto [begin, end] = options_.shard.of(batch_in_epoch * options_.batch_size,
                                              std::min(index_->size(), (batch_in_epoch + 1) * options_.batch_size));
  return std::vector<int64_t>(order->begin() + begin, order->begin() + end);
}

std::shared_ptr<ImageFolderLoader::Pending> ImageFolderLoader::make_pending(int64_t epoch, int64_t batch_in_epoch) const {
  auto p = std::make_shared<Pending>();
  p->epoch = epoch;
  p->batch_in_epoch = batch_in_epoch;
  p->indices = batch_indices(epoch, batch_in_epoch);
  const int64_t n = static_cast<int64_t>(p->indices.size()), s = settings_.transform.crop_size;
  p->images = at::empty({n, 3, s, s}, at::kFloat);
  p->labels = at::empty({n}, at::kLong);
  p->remaining = n;
  return p;
}

void ImageFolderLoader::prepare_sample(Pending& batch, int64_t slot) const {
  const int64_t sample = batch.indices[static_cast<size_t>(slot)];
  const int64_t n = index_->size();
  int64_t file = sample;
  RgbImage image;
  for (int64_t tries = 0;; ++tries) {
    try {
      image = read_image_file(index_->files[static_cast<size_t>(file)]);
      break;
    } catch (const Error& e) {
      if (!settings_.skip_corrupt)
        throw Error(std::string(e.what()) + " (set data.skip_corrupt = true to skip corrupt files)");
      corrupt_log_->record(file, e.what());
      if (tries + 1 >= n) throw Error("image folder " + index_->dir + ": every image file is corrupt");
      file = (file + 1) % n;
    }
  }
  const int64_t s = settings_.transform.crop_size;
  float* out = batch.images.data_ptr<float>() + slot * 3 * s * s;
  if (options_.augment) {
    train_transform(image, settings_.transform, options_.seed, static_cast<uint64_t>(batch.epoch), sample, out);
  } else {
    eval_transform(image, settings_.transform, out);
  }
  batch.labels.data_ptr<int64_t>()[slot] = index_->labels[static_cast<size_t>(file)];
}

Batch ImageFolderLoader::get(int64_t epoch, int64_t batch_in_epoch) const {
  if (epoch < 0 || batch_in_epoch < 0 || batch_in_epoch >= batches_per_epoch())
    throw Error("batch " + std::to_string(batch_in_epoch) + " of epoch " + std::to_string(epoch) +
                " does not exist: an epoch has batches 0.." + std::to_string(batches_per_epoch() - 1));
  auto p = make_pending(epoch, batch_in_epoch);
  for (int64_t slot = 0; slot < static_cast<int64_t>(p->indices.size()); ++slot) prepare_sample(*p, slot);
  return Batch{p->images, p->labels, epoch, batch_in_epoch};
}

void ImageFolderLoader::schedule_ahead() {
  int64_t epoch = cursor_epoch_, batch = cursor_batch_;
  if (!scheduled_.empty()) {
    epoch = scheduled_.back()->epoch;
    batch = scheduled_.back()->batch_in_epoch + 1;
    if (batch == batches_per_epoch()) {
      batch = 0;
      ++epoch;
    }
  }
  while (static_cast<int64_t>(scheduled_.size()) < settings_.prefetch_batches + 1) {
    if (options_.single_pass && epoch > 0) break;  // evaluation: nothing to prepare past the one epoch
    auto p = make_pending(epoch, batch);
    for (int64_t slot = 0; slot < static_cast<int64_t>(p->indices.size()); ++slot) tasks_.emplace_back(p, slot);
    scheduled_.push_back(std::move(p));
    if (++batch == batches_per_epoch()) {
      batch = 0;
      ++epoch;
    }
  }
  wake_workers_.notify_all();
}

void ImageFolderLoader::worker_loop() {
  // The workers run no ATen op (the decoders and image_transform.cpp work on raw buffers). One that ever runs an
  // ATen parallel loop must call run_parallel_loops_on_this_thread_only() first (util/helper_thread_openmp.h).
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_workers_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
    if (stop_) return;
    auto [batch, slot] = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    std::exception_ptr error;
    if (!batch->abandoned.load()) {
      try {
        prepare_sample(*batch, slot);
      } catch (...) {
        error = std::current_exception();
        batch->abandoned = true;  // the batch has failed: its other samples need not be decoded
      }
    }
    lock.lock();
    if (error && !batch->error) batch->error = error;
    if (--batch->remaining == 0) sample_done_.notify_all();
  }
}

Batch ImageFolderLoader::next() {
  if (options_.single_pass && cursor_epoch_ > 0)
    throw Error("image folder loader: a single-pass (evaluation) loader has no batches after its one epoch");
  std::shared_ptr<Pending> ready;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    if (workers_.empty())
      for (int64_t i = 0; i < settings_.workers; ++i) workers_.emplace_back([this] { worker_loop(); });
    if (!scheduled_.empty() &&
        (scheduled_.front()->epoch != cursor_epoch_ || scheduled_.front()->batch_in_epoch != cursor_batch_)) {
      // A seek: drop everything prepared for the old position (workers finish the sample in hand and skip the rest).
      for (auto& p : scheduled_) p->abandoned = true;
      scheduled_.clear();
      tasks_.clear();
    }
    schedule_ahead();
    ready = scheduled_.front();
    sample_done_.wait(lock, [&] { return ready->remaining == 0 || ready->error; });
    if (ready->error) {
      // Abandon the pipeline: the next call starts afresh from the (unchanged) cursor.
      for (auto& p : scheduled_) p->abandoned = true;
      scheduled_.clear();
      tasks_.clear();
      std::rethrow_exception(ready->error);
    }
    scheduled_.pop_front();
  }
  if (++cursor_batch_ == batches_per_epoch()) {
    cursor_batch_ = 0;
    ++cursor_epoch_;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    schedule_ahead();  // keep the workers busy while the caller uses this batch
  }
  return Batch{ready->images, ready->labels, ready->epoch, ready->batch_in_epoch};
}

ImageFolderSplit::ImageFolderSplit(std::string name, std::shared_ptr<const ImageFolderIndex> index,
                                   ImageFolderSettings settings)
    : name_(std::move(name)), index_(std::move(index)), settings_(settings) {
  check_transform_config(settings_.transform);
}

std::array<int64_t, 3> ImageFolderSplit::sample_shape() const {
  return {3, settings_.transform.crop_size, settings_.transform.crop_size};
}

std::unique_ptr<BatchSource> ImageFolderSplit::make_loader(const LoaderOptions& options) const {
  return std::make_unique<ImageFolderLoader>(index_, settings_, options, corrupt_log_);
}

nlohmann::json ImageFolderSplit::report() const {
  return {{"dir", index_->dir},
          {"files", index_->size()},
          {"classes", index_->classes},
          {"ignored_files", index_->ignored_files},
          {"skipped_corrupt_files", corrupt_log_->count()}};
}

}  // namespace fractrain
