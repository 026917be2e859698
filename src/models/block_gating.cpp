#include "fractrain/cost/bit_product.h"
#include "fractrain/models/gated_network.h"

namespace fractrain {

double BlockGating::relative_cost(const OptionSet& options, size_t k) const {
  const Precision& option = options.at(k);
  if (option.skip || macs_per_sample == 0) return 0.0;  // a skipped sample runs none of the block's layers
  const auto total = static_cast<double>(macs_per_sample), fixed = static_cast<double>(fixed_macs_per_sample);
  return (relative_training_cost(option) * (total - fixed) + relative_training_cost(fixed_precision) * fixed) / total;
}

}  // namespace fractrain
