#include "fractrain/precision/gating_cost.h"

#include <torch/torch.h>

#include "fractrain/cost/bit_product.h"
#include "fractrain/util/device_constant.h"
#include "fractrain/util/error.h"

namespace fractrain {

at::Tensor gating_cost(const std::vector<BlockDecision>& gating, const OptionSet& options) {
  if (gating.empty()) throw Error("DFQ cost term: the model ran no gate");
  double mean_macs = 0;
  for (const auto& g : gating) mean_macs += static_cast<double>(g.macs_per_sample);
  mean_macs /= static_cast<double>(gating.size());
  at::Tensor total;
  for (const auto& g : gating) {
    // fw + eb + gc bit products of the block's layers over 32^2 (fixed-precision layers included), per option.
    std::vector<float> option_cost;
    for (size_t k = 0; k < options.size(); ++k)
      option_cost.push_back(static_cast<float>(g.relative_cost(options, k) * kPassCount));
    const double scale = static_cast<double>(g.macs_per_sample) / mean_macs;
    // A constant per block and option set: made on the device once, not copied there every step.
    at::Tensor block = (g.mask * device_constant(option_cost, g.mask.device())).sum() * scale;
    total = total.defined() ? total + block : block;
  }
  return total;
}

}  // namespace fractrain
