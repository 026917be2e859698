#pragma once
// What a run learns, seen from the trainer: how batches are made and fed to the model, what counts as one
// prediction, how evaluation scores the model, and what the run directory must keep. Image classification and
// language modelling differ only here; the training loop, precision control, cost and checkpoints are shared.
//
// Both tasks score with the same formulas: the mean cross-entropy over predictions (one per image; one per token
// for a language model) and the top-1 accuracy of those predictions. A language model adds the perplexity,
// exp(mean token cross-entropy), and selects its best checkpoint by the lowest evaluation loss.
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "fractrain/data/batch_source.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/train/evaluate.h"
#include "fractrain/train/run_config.h"

namespace fractrain {

struct TaskBatch {
  at::Tensor inputs;   // float images [B, C, H, W] or int64 token ids [B, T]
  at::Tensor targets;  // int64 labels [B] or next-token ids [B, T]
  int64_t samples() const { return inputs.size(0); }  // images or sequences: what the cost meter counts
};

class TrainingTask {
 public:
  virtual ~TrainingTask() = default;

  virtual bool is_language_model() const = 0;
  virtual ModelInputSpec input_spec() const = 0;
  // Sizes for the summary: images, or tokens of the split.
  virtual int64_t train_size() const = 0;
  virtual int64_t eval_size() const = 0;
  virtual std::string eval_split_name() const = 0;  // "test" or "valid"

  // Training batches: a deterministic sequence of (epoch, batch) positions, resumable with seek().
  virtual int64_t batches_per_epoch() const = 0;
  virtual TaskBatch next_batch() = 0;
  virtual void seek(int64_t epoch, int64_t batch_in_epoch) = 0;
  virtual int64_t next_epoch() const = 0;
  virtual int64_t next_batch_in_epoch() const = 0;
  // Data parallel: next_batch() returns only this rank's part of each training batch (data/batch_source.h).
  // Call before the first batch.
  virtual void shard_training_batches(BatchShard shard) = 0;

  // The whole evaluation split in eval mode under `plan`.
  virtual EvalResult evaluate(QuantizedModel& model, const PrecisionPlan& plan, c10::Device device) const = 0;
  // Higher is better: the accuracy, or minus the loss for a language model.
  virtual double score(const EvalResult& result) const = 0;

  // Written into the run directory at setup (a language model's vocab.txt), and what a checkpoint records to
  // check that a resumed run sees the same data (restore throws fractrain::Error naming `where` when it does not).
  virtual void save_run_files(const std::string& output_dir) const {}
  virtual nlohmann::json state() const { return nullptr; }
  virtual void restore(const nlohmann::json& state, const std::string& where) const {}
  // Keys the run summary adds about the data (which half of a split, the class ids, files a streamed dataset
  // skipped); an object.
  virtual nlohmann::json summary() const { return nlohmann::json::object(); }
};

// Mean cross-entropy of logits [..., C] against targets [...] (one prediction per target).
at::Tensor prediction_loss(const at::Tensor& logits, const at::Tensor& targets);
// Predictions whose argmax is the target: counted on the logits' device (a 0-d int64 tensor), and read.
at::Tensor count_correct_predictions(const at::Tensor& logits, const at::Tensor& targets);
int64_t correct_predictions(const at::Tensor& logits, const at::Tensor& targets);

// The task of config.data.dataset: a language model for the token datasets (wikitext103, wordnet-lm), image
// classification otherwise. `run_dir` is the run directory whose saved vocabulary a language model reuses (a resumed
// run, `fractrain eval`); "" or a directory without one builds it from the training split.
std::unique_ptr<TrainingTask> make_training_task(const RunConfig& config, const std::string& run_dir);

}  // namespace fractrain
