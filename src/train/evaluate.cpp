#include "fractrain/train/evaluate.h"

#include <torch/torch.h>

namespace fractrain {

EvalResult evaluate(QuantizedModel& model, const PrecisionPlan& plan, const DataSplit& data, int64_t batch_size,
                    c10::Device device) {
  LoaderOptions options;
  options.batch_size = batch_size;  // no shuffle, no augmentation, every sample once
  options.single_pass = true;
  const std::unique_ptr<BatchSource> loader = data.make_loader(options);
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard no_grad;
  EvalTotals totals;
  for (int64_t b = 0; b < loader->batches_per_epoch(); ++b) {
    Batch batch = loader->next();  // prefetched: the next batch is prepared while this one runs
    at::Tensor images = batch.images.to(device), labels = batch.labels.to(device);
    totals.add(model.forward(images, plan), labels);
  }
  model.train(was_training);
  return totals.result();
}

void EvalTotals::add(const at::Tensor& logits, const at::Tensor& targets) {
  const at::Tensor flat = logits.reshape({-1, logits.size(-1)}), flat_targets = targets.reshape({-1});
  loss_sum_ += torch::cross_entropy_loss(flat, flat_targets, {}, at::Reduction::Sum).item<double>();
  correct_ += flat.argmax(1).eq(flat_targets).sum().item<int64_t>();
  predictions_ += flat_targets.numel();
}

EvalResult EvalTotals::result() const {
  EvalResult r;
  r.samples = predictions_;
  r.loss = predictions_ ? loss_sum_ / predictions_ : 0.0;
  r.accuracy = predictions_ ? static_cast<double>(correct_) / predictions_ : 0.0;
  return r;
}

}  // namespace fractrain
