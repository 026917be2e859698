#pragma once
// Walks a dataset in (optionally shuffled) batches, epoch after epoch, preparing the next batch on a
// background thread while the caller trains on the current one. The batch at (epoch, batch_in_epoch) is a
// pure function of the constructor arguments, so seek() resumes a run exactly.
#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fractrain/data/batch_source.h"
#include "fractrain/data/batch_transform.h"
#include "fractrain/data/image_dataset.h"

namespace fractrain {

class BatchLoader : public BatchSource {
 public:
  // Throws fractrain::Error for batch_size <= 0, an empty dataset, or drop_last with fewer samples than one
  // batch (which would leave epochs without batches).
  // `shard`: the part of each batch this loader returns (data parallel; the whole batch by default).
  BatchLoader(std::shared_ptr<const ImageDataset> data, int64_t batch_size, bool shuffle, bool drop_last,
              AugmentConfig aug, bool augment, uint64_t seed, BatchShard shard = {});
  ~BatchLoader() override;  // stops and joins the prefetch thread
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  const ImageDataset& dataset() const { return *data_; }
  int64_t batch_size() const { return batch_size_; }
  // Full batches plus, unless drop_last, one final smaller batch.
  int64_t batches_per_epoch() const override;

  // The sample order of an epoch: epoch_sample_order over the dataset.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Makes next() continue from (epoch, batch_in_epoch), e.g. after loading a checkpoint.
  void seek(int64_t epoch, int64_t batch_in_epoch) override;
  // The position next() returns next, to store in a checkpoint.
  int64_t next_epoch() const override { return cursor_epoch_; }
  int64_t next_batch_in_epoch() const override { return cursor_batch_; }

  // The batch at the cursor, then advances it (into the next epoch after the last batch) and starts
  // preparing the following batch in the background.
  Batch next() override;
  // Any batch, computed on the calling thread; does not move the cursor.
  Batch get(int64_t epoch, int64_t batch_in_epoch) const;

 private:
  // Epoch orders are O(N) to draw; keep the two most recent (a prefetch may be one epoch ahead).
  std::shared_ptr<const std::vector<int64_t>> cached_order(int64_t epoch) const;
  void worker_loop();
  void start_worker_once();

  std::shared_ptr<const ImageDataset> data_;
  int64_t batch_size_;
  bool shuffle_;
  bool drop_last_;
  AugmentConfig aug_;
  bool augment_;
  uint64_t seed_;
  BatchShard shard_;

  int64_t cursor_epoch_ = 0;
  int64_t cursor_batch_ = 0;

  mutable std::mutex order_mutex_;
  mutable std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> orders_;

  // Prefetch state, guarded by mutex_. A request names a position; the result is tagged with the position it
  // was made for, so a seek simply makes a stale result miss.
  std::mutex mutex_;
  std::condition_variable wake_worker_;
  std::condition_variable work_done_;
  std::thread worker_;
  bool stop_ = false;
  bool has_request_ = false;
  bool busy_ = false;
  int64_t request_epoch_ = 0, request_batch_ = 0;
  bool has_result_ = false;
  int64_t result_epoch_ = 0, result_batch_ = 0;
  Batch result_;
  std::exception_ptr result_error_;
};

}  // namespace fractrain
