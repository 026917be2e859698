#include "fractrain/train/run_cost.h"

#include "fractrain/cost/cost_report.h"
#include "fractrain/models/model_profile.h"
#include "fractrain/precision/static_plan.h"
#include "fractrain/train/run_components.h"

namespace fractrain {
namespace {

struct CostReference {
  std::string name;
  Precision precision;
};
const std::vector<CostReference> kCostReferences = {{"fp32", Precision::full()}, {"fw8bw8", Precision::fw_bw(8, 8)}};

}  // namespace

std::unique_ptr<CostMeter> make_run_cost_meter(const RunConfig& config, QuantizedModel& model,
                                               const ModelInputSpec& input) {
  const QuantizationPolicy policy = quantization_policy_of(config.precision);
  auto meter =
      std::make_unique<CostMeter>(profile_model(model, input), hardware_model_or_builtin(config.cost.hardware));
  for (const auto& r : kCostReferences) meter->add_reference(r.name, make_static_plan(model, r.precision, policy));
  model.set_cost_observer(meter.get());
  return meter;
}

std::vector<std::string> run_cost_metric_columns() {
  std::vector<std::string> references;
  for (const auto& r : kCostReferences) references.push_back(r.name);
  return cost_metric_columns(references);
}

}  // namespace fractrain
