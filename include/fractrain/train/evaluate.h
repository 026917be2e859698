#pragma once
// Test-set evaluation of a model under a precision plan (eval mode: BN and activation ranges use running
// statistics).
#include <c10/core/Device.h>

#include "fractrain/data/data_split.h"
#include "fractrain/models/quantized_model.h"

namespace fractrain {

struct EvalResult {
  double loss = 0.0;      // mean cross-entropy
  double accuracy = 0.0;  // top-1, in [0, 1]
  int64_t samples = 0;
};

// Sums what an evaluation pass sees, one prediction per target: logits [..., C] against targets [...] (an
// image's label, or every next token of a sequence). Shared by the image and language-model evaluations.
class EvalTotals {
 public:
  void add(const at::Tensor& logits, const at::Tensor& targets);
  EvalResult result() const;

 private:
  double loss_sum_ = 0.0;
  int64_t correct_ = 0, predictions_ = 0;
};

// One pass over the split in order, without augmentation (for an image folder: resize and center crop).
EvalResult evaluate(QuantizedModel& model, const PrecisionPlan& plan, const DataSplit& data, int64_t batch_size,
                    c10::Device device);

}  // namespace fractrain
