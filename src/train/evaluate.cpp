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
  double loss_sum = 0.0;
  int64_t correct = 0, seen = 0;
  for (int64_t b = 0; b < loader->batches_per_epoch(); ++b) {
    Batch batch = loader->next();  // prefetched: the next batch is prepared while this one runs
    at::Tensor images = batch.images.to(device), labels = batch.labels.to(device);
    at::Tensor logits = model.forward(images, plan);
    loss_sum += torch::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>();
    correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
    seen += labels.size(0);
  }
  model.train(was_training);
  EvalResult r;
  r.samples = seen;
  r.loss = seen ? loss_sum / seen : 0.0;
  r.accuracy = seen ? static_cast<double>(correct) / seen : 0.0;
  return r;
}

}  // namespace fractrain
