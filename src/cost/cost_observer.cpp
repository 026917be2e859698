#include "fractrain/cost/cost_observer.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "fractrain/util/error.h"

namespace fractrain {

LayerPrecision samples_by_option(const std::vector<Precision>& options, const std::vector<int64_t>& counts) {
  if (counts.size() != options.size())
    throw Error("cost: " + std::to_string(counts.size()) + " option counts for " + std::to_string(options.size()) +
                " options");
  std::vector<int> act, grad;
  int weight_bits = -1;
  for (size_t k = 0; k < options.size(); ++k) {
    const Precision& p = options[k];
    if (p.skip || counts[k] == 0) continue;
    if (weight_bits >= 0 && p.weight != weight_bits)
      throw Error("cost: the options of one layer run weights at " + std::to_string(weight_bits) + " and " +
                  std::to_string(p.weight) + " bits");
    weight_bits = p.weight;
    act.insert(act.end(), static_cast<size_t>(counts[k]), p.act);
    grad.insert(grad.end(), static_cast<size_t>(counts[k]), p.grad);
  }
  return LayerPrecision::per_sample(std::max(weight_bits, 0), std::move(act), std::move(grad));
}

void CostObserver::on_layer_by_option(const LayerExecutionByOption& e) {
  const at::Tensor host = e.option_counts.to(at::kCPU, at::kLong).contiguous();
  const std::vector<int64_t> counts(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + host.numel());
  const LayerPrecision ran = samples_by_option(e.options, counts);
  if (ran.samples() == 0) return;  // every sample skipped the layer: nothing ran
  on_layer(LayerExecution{e.layer, e.kind, e.macs_per_sample, ran.samples(), ran, e.training});
}

}  // namespace fractrain
