#include "fractrain/dist/range_agreement_over_ranks.h"

#include <ATen/ATen.h>

#include <limits>

namespace fractrain {
namespace {

class RangeAgreementOverRanks : public RangeAgreement {
 public:
  explicit RangeAgreementOverRanks(std::shared_ptr<Communicator> communicator)
      : communicator_(std::move(communicator)) {}

  QuantRange agree(QuantRange local, bool local_empty) override {
    // max(-lo) = -min(lo): one collective gives both ends. An empty slice contributes -inf to both.
    constexpr float kNone = -std::numeric_limits<float>::infinity();
    at::Tensor ends = at::empty({2}, at::kFloat);
    ends.data_ptr<float>()[0] = local_empty ? kNone : -local.lo;
    ends.data_ptr<float>()[1] = local_empty ? kNone : local.hi;
    communicator_->all_reduce({ends}, ReduceOp::Max, "quantizer range");
    const float lo = -ends.data_ptr<float>()[0], hi = ends.data_ptr<float>()[1];
    if (hi < lo) return {};  // every rank's slice was empty: the tensor_range of an empty tensor
    return {lo, hi};
  }

  bool any_rank(bool local) override {
    at::Tensor flag = at::full({1}, local ? 1.0f : 0.0f, at::kFloat);
    communicator_->all_reduce({flag}, ReduceOp::Max, "whether a block runs");
    return flag.item<float>() > 0;
  }

 private:
  std::shared_ptr<Communicator> communicator_;
};

}  // namespace

std::shared_ptr<RangeAgreement> make_range_agreement_over_ranks(std::shared_ptr<Communicator> communicator) {
  return std::make_shared<RangeAgreementOverRanks>(std::move(communicator));
}

}  // namespace fractrain
