#pragma once
// Data-parallel ranks each quantize their slice of one batch. For all of them to quantize on the grid one process
// would use for the whole batch, a tensor's range must be the range of the whole batch: the min of the ranks'
// minima and the max of their maxima. The quantizer asks a RangeAgreement for that; the data-parallel runtime
// implements it with a collective (dist/range_agreement_over_ranks.h). Without one, a range is the local one.
#include <ATen/core/Tensor.h>

#include "fractrain/quant/fake_quantize.h"

namespace fractrain {

class RangeAgreement {
 public:
  virtual ~RangeAgreement() = default;
  // The range over every rank's slice, given this rank's. `local_empty`: this rank's slice has no elements (a
  // DFQ block that every local sample skips), so its `local` range takes no part. Every rank must call this for
  // the same tensors in the same order: it is a collective.
  virtual QuantRange agree(QuantRange local, bool local_empty) = 0;
  // Whether `local` holds on some rank (also a collective). A DFQ block that no sample of the whole batch runs is
  // skipped on every rank, as one process skips it; one that some rank's samples run runs on every rank.
  virtual bool any_rank(bool local) = 0;
};

// tensor_range(x), made the range of the whole batch by `agreement` when there is one (null: the local range).
QuantRange agreed_range(const at::Tensor& x, RangeAgreement* agreement);

}  // namespace fractrain
