#pragma once
// What the trainer and the evaluation read batches from: an endless walk through a dataset, epoch after
// epoch, that can be repositioned for a resume. The in-memory BatchLoader and the streaming
// ImageFolderLoader implement it; the batch at (epoch, batch_in_epoch) is a pure function of the loader's
// construction, so seek() resumes a run exactly.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace fractrain {

struct Batch {
  at::Tensor images;  // float32 [B, C, H, W], normalised (and augmented when the loader augments)
  at::Tensor labels;  // int64 [B]
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;
};

// Data parallel: the part of every batch one rank loads. Shard i of n takes rows [i*B/n, (i+1)*B/n) of a batch of
// B samples (rounded down), so the n shards of a batch are the batch a single loader returns: the same samples in
// the same order, with the same augmentation (drawn per sample, not per position).
struct BatchShard {
  int64_t index = 0;
  int64_t count = 1;
  // The shard's rows [first, last) of the batch of the loader's order positions [begin, end).
  std::pair<int64_t, int64_t> of(int64_t begin, int64_t end) const {
    const int64_t n = end - begin;
    return {begin + index * n / count, begin + (index + 1) * n / count};
  }
};

// How a loader walks its split: training shuffles, augments and drops the last partial batch; evaluation
// does none of these.
struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = false;
  bool drop_last = false;
  bool augment = false;
  uint64_t seed = 0;
  // Only epoch 0 will be read (evaluation): a loader need prepare nothing past its end, and a streaming one
  // refuses to go further.
  bool single_pass = false;
  BatchShard shard;
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Full batches plus, unless drop_last, one final smaller batch.
  virtual int64_t batches_per_epoch() const = 0;
  // Makes next() continue from (epoch, batch_in_epoch), e.g. after loading a checkpoint.
  virtual void seek(int64_t epoch, int64_t batch_in_epoch) = 0;
  // The position next() returns next, to store in a checkpoint.
  virtual int64_t next_epoch() const = 0;
  virtual int64_t next_batch_in_epoch() const = 0;
  // The batch at the cursor; advances the cursor (into the next epoch after the last batch).
  virtual Batch next() = 0;
};

// The sample order of an epoch over n samples: a Fisher-Yates shuffle seeded by (seed, epoch), or 0..n-1
// without shuffling. Every loader uses this one, so a dataset is walked in the same order whatever holds it.
std::vector<int64_t> epoch_sample_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch);

}  // namespace fractrain
