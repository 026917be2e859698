#pragma once
// Language-model batches from a token stream, as in the standard setup ("batchify"): the stream of N tokens is
// cut into B parallel streams of N / B consecutive tokens (the remainder dropped), and each batch is a window of
// T positions of all B streams: inputs [B, T] and next-token targets [B, T] (the same window shifted by one).
// Consecutive windows continue each other, so every token is predicted once per epoch.
//
// Training visits the windows of an epoch in a seeded random order (a pure function of (seed, epoch), so seek()
// resumes a run exactly); evaluation walks them in order and keeps a last shorter window, so every token counts.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fractrain {

struct LmBatch {
  at::Tensor inputs;   // int64 [B, T]
  at::Tensor targets;  // int64 [B, T]
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;
};

class LmBatches {
 public:
  // `stream`: int32 or int64 [N]. `what` names the stream in messages ("the train split (data/x/wiki.train.tokens)").
  // Throws fractrain::Error when the stream cannot fill one window of every stream (naming the sizes and the keys
  // to lower), or for streams/window < 1.
  LmBatches(const at::Tensor& stream, int64_t streams, int64_t window, bool shuffle, bool keep_last_partial,
            uint64_t seed, const std::string& what);

  int64_t streams() const { return streams_; }
  int64_t window() const { return window_; }
  int64_t batches_per_epoch() const { return windows_; }
  // Tokens predicted per epoch (targets in all windows).
  int64_t tokens_per_epoch() const { return streams_ * (columns_ - 1); }

  // The window order of an epoch: seeded Fisher-Yates, or 0..W-1 without shuffling.
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  LmBatch get(int64_t epoch, int64_t batch_in_epoch) const;

  void seek(int64_t epoch, int64_t batch_in_epoch);
  int64_t next_epoch() const { return epoch_; }
  int64_t next_batch_in_epoch() const { return batch_; }
  // The batch at the cursor, then advances it (into the next epoch after the last window).
  LmBatch next();

 private:
  at::Tensor matrix_;  // int64 [streams, columns]
  int64_t streams_, window_, columns_, windows_;
  bool shuffle_;
  uint64_t seed_;
  int64_t epoch_ = 0, batch_ = 0;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};

}  // namespace fractrain
