#include "fractrain/quant/range_agreement.h"

namespace fractrain {

QuantRange agreed_range(const at::Tensor& x, RangeAgreement* agreement) {
  const QuantRange local = tensor_range(x);
  return agreement ? agreement->agree(local, x.numel() == 0) : local;
}

}  // namespace fractrain
