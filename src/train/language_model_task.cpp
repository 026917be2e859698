// Language modelling on a token corpus: batchified windows of data.sequence_length tokens with next-token
// targets, the mean token cross-entropy as the loss, and the validation split's loss, token accuracy and
// perplexity as the evaluation. The vocabulary is saved as vocab.txt in the run directory; a resumed run and
// `fractrain eval` read it back, and the checkpoint records checksums that prove the data is the same.
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "task_factories.h"
#include "fractrain/data/lm_batches.h"
#include "fractrain/data/token_corpus.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;

// FNV-1a over bytes: a cheap fingerprint, enough to notice a changed corpus or vocabulary.
uint64_t fnv1a(const void* data, size_t size, uint64_t hash = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

std::string hex(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

at::Tensor prefix(const at::Tensor& stream, int64_t tokens) {
  return tokens > 0 && tokens < stream.size(0) ? stream.narrow(0, 0, tokens) : stream;
}

std::string vocabulary_path(const std::string& run_dir) { return (fs::path(run_dir) / "vocab.txt").string(); }

class LanguageModelTask : public TrainingTask {
 public:
  LanguageModelTask(const RunConfig& config, const std::string& run_dir) : config_(config) {
    const auto& d = config.data;
    std::unique_ptr<Vocabulary> saved;
    std::error_code ec;
    if (!run_dir.empty() && fs::exists(vocabulary_path(run_dir), ec))
      saved = std::make_unique<Vocabulary>(Vocabulary::load(vocabulary_path(run_dir)));
    corpus_ = load_token_corpus(d.dataset, d.path, d.vocab_min_count, saved.get());
    // Subsets of a token stream are prefixes: the text stays contiguous, as a language model reads it.
    train_stream_ = prefix(corpus_.train, d.train_subset);
    eval_stream_ = prefix(corpus_.valid, d.test_subset);
    const int64_t batch = config.train.batch_size, length = d.sequence_length;
    train_ = std::make_unique<LmBatches>(train_stream_, batch, length, /*shuffle=*/true, /*keep_last_partial=*/false,
                                         config.train.seed, "the train split (" + corpus_.train_path + ")");
    train_checksum_ = stream_checksum();  // once: a WikiText-103 stream is 400 MB
    eval_ = std::make_unique<LmBatches>(eval_stream_, batch, length, /*shuffle=*/false, /*keep_last_partial=*/true, 0,
                                        "the valid split (" + corpus_.valid_path + ")");
  }

  bool is_language_model() const override { return true; }
  ModelInputSpec input_spec() const override {
    ModelInputSpec spec;
    spec.num_classes = corpus_.vocabulary.size();
    spec.sequence_length = config_.data.sequence_length;
    return spec;
  }
  int64_t train_size() const override { return train_stream_.size(0); }
  int64_t eval_size() const override { return eval_stream_.size(0); }
  std::string eval_split_name() const override { return "valid"; }

  int64_t batches_per_epoch() const override { return train_->batches_per_epoch(); }
  TaskBatch next_batch() override {
    LmBatch b = train_->next();
    // Sequences are cheap to cut out of the token stream: every rank makes the whole batch and keeps its rows.
    const auto [first, last] = shard_.of(0, b.inputs.size(0));
    return TaskBatch{b.inputs.slice(0, first, last), b.targets.slice(0, first, last)};
  }
  void shard_training_batches(BatchShard shard) override { shard_ = shard; }
  void seek(int64_t epoch, int64_t batch_in_epoch) override { train_->seek(epoch, batch_in_epoch); }
  int64_t next_epoch() const override { return train_->next_epoch(); }
  int64_t next_batch_in_epoch() const override { return train_->next_batch_in_epoch(); }

  EvalResult evaluate(QuantizedModel& model, const PrecisionPlan& plan, c10::Device device) const override {
    const bool was_training = model.is_training();
    model.eval();
    torch::NoGradGuard no_grad;
    EvalTotals totals;
    for (int64_t i = 0; i < eval_->batches_per_epoch(); ++i) {
      const LmBatch b = eval_->get(0, i);
      totals.add(model.forward(b.inputs.to(device), plan), b.targets.to(device));
    }
    model.train(was_training);
    return totals.result();
  }
  double score(const EvalResult& result) const override { return -result.loss; }

  void save_run_files(const std::string& output_dir) const override {
    corpus_.vocabulary.save(vocabulary_path(output_dir));
  }

  nlohmann::json state() const override {
    const std::string text = corpus_.vocabulary.to_text();
    return {{"vocabulary_words", corpus_.vocabulary.size()},
            {"vocabulary_checksum", hex(fnv1a(text.data(), text.size()))},
            {"train_tokens", train_stream_.size(0)},
            {"train_checksum", train_checksum_}};
  }

  void restore(const nlohmann::json& saved, const std::string& where) const override {
    if (saved.is_null()) return;
    const nlohmann::json now = state();
    for (const char* key : {"vocabulary_words", "vocabulary_checksum", "train_tokens", "train_checksum"}) {
      if (!saved.contains(key) || saved.at(key) != now.at(key))
        throw Error(where + ": the checkpoint was trained on other data: " + key + " was " +
                    (saved.contains(key) ? saved.at(key).dump() : std::string("missing")) + ", now " +
                    now.at(key).dump() + " (" + corpus_.train_path +
                    "). The corpus, data.train_subset or data.vocab_min_count changed; resume with the original data");
    }
  }

 private:
  std::string stream_checksum() const {
    const at::Tensor s = train_stream_.contiguous();
    return hex(fnv1a(s.data_ptr<int32_t>(), static_cast<size_t>(s.numel()) * sizeof(int32_t)));
  }

  RunConfig config_;
  TokenCorpus corpus_;
  at::Tensor train_stream_, eval_stream_;
  std::string train_checksum_;
  std::unique_ptr<LmBatches> train_, eval_;
  BatchShard shard_;
};

}  // namespace

std::unique_ptr<TrainingTask> make_language_model_task(const RunConfig& config, const std::string& run_dir) {
  return std::make_unique<LanguageModelTask>(config, run_dir);
}

}  // namespace fractrain
