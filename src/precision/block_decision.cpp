#include "fractrain/precision/block_decision.h"

#include <ATen/ATen.h>

#include "fractrain/cost/bit_product.h"
#include "fractrain/util/device_constant.h"
#include "fractrain/util/error.h"

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

double blocks_cp(const std::vector<BlockDecision>& decisions, const std::vector<std::vector<int64_t>>& chosen,
                 const OptionSet& options) {
  if (chosen.size() != decisions.size())
    throw Error("DFQ: choices of " + std::to_string(chosen.size()) + " blocks for " +
                std::to_string(decisions.size()) + " gated blocks");
  double cost = 0, fp32 = 0;
  for (size_t b = 0; b < decisions.size(); ++b) {
    const auto macs = static_cast<double>(decisions[b].macs_per_sample);
    for (int64_t k : chosen[b]) cost += macs * decisions[b].relative_cost(options, static_cast<size_t>(k));
    fp32 += macs * static_cast<double>(chosen[b].size());
  }
  return fp32 > 0 ? 100.0 * cost / fp32 : 0.0;
}

at::Tensor option_counts_on_device(const std::vector<BlockDecision>& decisions, size_t options) {
  if (decisions.empty()) throw Error("DFQ: the model ran no gate");
  std::vector<at::Tensor> chosen;
  for (const auto& d : decisions) chosen.push_back(d.options.to(at::kLong));
  const at::Tensor index = at::stack(chosen);  // [blocks, N]: every block decides for every sample
  return at::zeros({index.size(0), static_cast<int64_t>(options)}, index.options())
      .scatter_add_(1, index, at::ones_like(index));
}

at::Tensor blocks_cp_on_device(const std::vector<BlockDecision>& decisions, const at::Tensor& counts,
                               const OptionSet& options) {
  std::vector<double> weights;  // [block][option]: MACs x relative cost, as blocks_cp adds per sample
  double fp32 = 0;
  for (const auto& d : decisions) {
    const auto macs = static_cast<double>(d.macs_per_sample);
    for (size_t k = 0; k < options.size(); ++k) weights.push_back(macs * d.relative_cost(options, k));
    fp32 += macs * static_cast<double>(d.options.size(0));
  }
  const at::Tensor cost = (counts.to(at::kDouble).reshape({-1}) * device_constant(weights, counts.device())).sum();
  return fp32 > 0 ? cost.mul(100.0).div(fp32) : at::zeros({}, cost.options());
}

}  // namespace fractrain
