// Image classification: the in-memory datasets of load_image_dataset or a streamed image folder, augmented
// shuffled batches, top-1 evaluation on the test split.
#include <torch/torch.h>

#include "task_factories.h"
#include "fractrain/data/batch_source.h"
#include "fractrain/train/run_components.h"

namespace fractrain {
namespace {

class ClassificationTask : public TrainingTask {
 public:
  explicit ClassificationTask(const RunConfig& config)
      : data_(load_run_data(config.data, config.train.seed)),
        batch_size_(config.train.batch_size),
        split_({{"split", config.data.split},
                {"split_seed", config.data.split_seed},
                {"classes", data_.classes},
                {"init_from", config.train.init_from}}) {
    training_.batch_size = config.train.batch_size;
    training_.shuffle = training_.drop_last = training_.augment = true;
    training_.seed = config.train.seed;
    loader_ = data_.train->make_loader(training_);
  }

  bool is_language_model() const override { return false; }
  ModelInputSpec input_spec() const override { return input_spec_of(*data_.train); }
  int64_t train_size() const override { return data_.train->size(); }
  int64_t eval_size() const override { return data_.test->size(); }
  std::string eval_split_name() const override { return "test"; }

  int64_t batches_per_epoch() const override { return loader_->batches_per_epoch(); }
  TaskBatch next_batch() override {
    Batch b = loader_->next();
    return TaskBatch{b.images, b.labels};
  }
  void seek(int64_t epoch, int64_t batch_in_epoch) override { loader_->seek(epoch, batch_in_epoch); }
  void shard_training_batches(BatchShard shard) override {
    training_.shard = shard;
    loader_ = data_.train->make_loader(training_);
  }
  int64_t next_epoch() const override { return loader_->next_epoch(); }
  int64_t next_batch_in_epoch() const override { return loader_->next_batch_in_epoch(); }

  EvalResult evaluate(QuantizedModel& model, const PrecisionPlan& plan, c10::Device device) const override {
    return fractrain::evaluate(model, plan, *data_.test, batch_size_, device);
  }
  double score(const EvalResult& result) const override { return result.accuracy; }

  nlohmann::json summary() const override {
    nlohmann::json s = {{"split", split_}};
    const nlohmann::json train = data_.train->report(), test = data_.test->report();
    if (!train.is_null() || !test.is_null()) s["data"] = {{"train", train}, {"test", test}};
    return s;
  }

 private:
  RunData data_;
  int64_t batch_size_;
  nlohmann::json split_;  // which data this run saw (DESIGN.md 4.10 settings)
  LoaderOptions training_;
  std::unique_ptr<BatchSource> loader_;
};

}  // namespace

std::unique_ptr<TrainingTask> make_classification_task(const RunConfig& config) {
  return std::make_unique<ClassificationTask>(config);
}

}  // namespace fractrain
