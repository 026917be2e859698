#pragma once
// The quantizer's RangeAgreement over data-parallel ranks: one MAX all-reduce of (-lo, hi) per quantized tensor.
#include <memory>

#include "fractrain/dist/communicator.h"
#include "fractrain/quant/range_agreement.h"

namespace fractrain {

std::shared_ptr<RangeAgreement> make_range_agreement_over_ranks(std::shared_ptr<Communicator> communicator);

}  // namespace fractrain
