#include "fractrain/precision/block_decision.h"

#include <ATen/ATen.h>

#include "fractrain/cost/bit_product.h"

namespace fractrain {

double BlockDecision::relative_cost(const OptionSet& options, size_t k) const {
  const Precision& option = options.at(k);
  if (option.skip || macs_per_sample == 0) return 0.0;  // a skipped sample runs none of the block's layers
  const auto total = static_cast<double>(macs_per_sample), fixed = static_cast<double>(fixed_macs_per_sample);
  return (relative_training_cost(option) * (total - fixed) + relative_training_cost(fixed_precision) * fixed) / total;
}

std::vector<std::vector<int64_t>> options_on_host(const std::vector<BlockDecision>& decisions) {
  std::vector<std::vector<int64_t>> out;
  out.reserve(decisions.size());
  for (const auto& d : decisions) {
    const at::Tensor cpu = d.options.to(at::kCPU, at::kLong).contiguous();
    out.emplace_back(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel());
  }
  return out;
}

}  // namespace fractrain
