#pragma once
// Streams batches from an image folder: each sample is read, decoded and transformed when its batch is
// scheduled, by a pool of worker threads that prepares the next batches while the caller trains on the
// current one. Nothing but the file list is held in memory.
//
// Why per-sample work items: a decoded ImageNet JPEG takes milliseconds, so a batch of 256 keeps every
// worker busy, and the result cannot depend on which thread did which sample (each sample's random crop is
// a pure function of (seed, epoch, sample index)), so any worker count gives bit-identical batches.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "fractrain/data/batch_source.h"
#include "fractrain/data/data_split.h"
#include "fractrain/data/image_folder.h"
#include "fractrain/data/image_transform.h"

namespace fractrain {

// Corrupt files met while skipping them (data.skip_corrupt): each is warned about once, and counted.
class CorruptFileLog {
 public:
  void record(int64_t file, const std::string& message);
  int64_t count() const;

 private:
  mutable std::mutex mutex_;
  std::set<int64_t> files_;
};

struct ImageFolderSettings {
  ImageTransformConfig transform;
  int64_t workers = 1;        // decoding threads (>= 1)
  int64_t prefetch_batches = 2;  // batches prepared ahead of the one the caller waits for
  bool skip_corrupt = false;  // false: a corrupt file stops the run with an error naming it
};

class ImageFolderLoader : public BatchSource {
 public:
  // Throws fractrain::Error for batch_size <= 0, an empty index, drop_last with fewer files than one batch,
  // workers < 1 or an unusable transform.
  ImageFolderLoader(std::shared_ptr<const ImageFolderIndex> index, ImageFolderSettings settings,
                    LoaderOptions options, std::shared_ptr<CorruptFileLog> corrupt_log);
  ~ImageFolderLoader() override;  // stops and joins the workers (each finishes the sample in hand)
  ImageFolderLoader(const ImageFolderLoader&) = delete;
  ImageFolderLoader& operator=(const ImageFolderLoader&) = delete;

  int64_t batches_per_epoch() const override;
  void seek(int64_t epoch, int64_t batch_in_epoch) override;
  int64_t next_epoch() const override { return cursor_epoch_; }
  int64_t next_batch_in_epoch() const override { return cursor_batch_; }
  // The batch at the cursor, from the workers; rethrows the error of any sample that failed.
  Batch next() override;
  // Any batch, computed on the calling thread without the workers; does not move the cursor.
  Batch get(int64_t epoch, int64_t batch_in_epoch) const;

 private:
  struct Pending;  // a batch being prepared
  std::vector<int64_t> batch_indices(int64_t epoch, int64_t batch_in_epoch) const;
  std::shared_ptr<Pending> make_pending(int64_t epoch, int64_t batch_in_epoch) const;
  // Decodes and transforms sample `slot` of the batch into its images/labels; with skip_corrupt a corrupt
  // file is replaced by the next good file in the (sorted) list, the same one every time.
  void prepare_sample(Pending& batch, int64_t slot) const;
  void schedule_ahead();  // with mutex_ held
  void worker_loop();

  std::shared_ptr<const ImageFolderIndex> index_;
  ImageFolderSettings settings_;
  LoaderOptions options_;
  std::shared_ptr<CorruptFileLog> corrupt_log_;

  int64_t cursor_epoch_ = 0, cursor_batch_ = 0;
  mutable std::mutex order_mutex_;
  mutable std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> orders_;  // two most recent epochs

  std::mutex mutex_;  // guards everything below
  std::condition_variable wake_workers_, sample_done_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
  std::deque<std::shared_ptr<Pending>> scheduled_;  // in batch order; front = the cursor's batch
  std::deque<std::pair<std::shared_ptr<Pending>, int64_t>> tasks_;  // (batch, slot) not yet taken by a worker
};

// An image folder split for a run: the scanned index plus how its samples are loaded.
class ImageFolderSplit : public DataSplit {
 public:
  ImageFolderSplit(std::string name, std::shared_ptr<const ImageFolderIndex> index, ImageFolderSettings settings);
  std::string name() const override { return name_; }
  int64_t size() const override { return index_->size(); }
  int64_t num_classes() const override { return static_cast<int64_t>(index_->classes.size()); }
  std::array<int64_t, 3> sample_shape() const override;
  std::unique_ptr<BatchSource> make_loader(const LoaderOptions& options) const override;
  // {"dir", "files", "classes": [...], "ignored_files", "skipped_corrupt_files"}
  nlohmann::json report() const override;
  const ImageFolderIndex& index() const { return *index_; }
  int64_t skipped_corrupt_files() const { return corrupt_log_->count(); }

 private:
  std::string name_;
  std::shared_ptr<const ImageFolderIndex> index_;
  ImageFolderSettings settings_;
  std::shared_ptr<CorruptFileLog> corrupt_log_ = std::make_shared<CorruptFileLog>();
};

}  // namespace fractrain
