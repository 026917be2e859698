#include "fractrain/train/precision_schedule.h"

#include "fractrain/models/gated_network.h"
#include "fractrain/precision/dynamic_controller.h"
#include "fractrain/precision/progressive_controller.h"
#include "fractrain/precision/static_controller.h"
#include "fractrain/train/run_components.h"
#include "fractrain/util/error.h"

namespace fractrain {

std::vector<int64_t> manual_switch_steps(const PrecisionConfig& precision, int64_t steps_per_epoch,
                                         int64_t total_steps) {
  std::vector<int64_t> steps;
  if (!precision.pfq_switch_iterations.empty()) return precision.pfq_switch_iterations;
  for (int64_t epoch : precision.pfq_switch_epochs) steps.push_back(epoch * steps_per_epoch);
  if (!steps.empty()) return steps;
  const auto stages = static_cast<int64_t>(precision.pfq_fw.size());
  // Equal parts; on a run shorter than the schedule a part may be empty, which the next one's +1 prevents
  // from making the steps equal (ProgressiveController wants them strictly increasing).
  for (int64_t i = 1; i < stages; ++i) {
    int64_t s = total_steps * i / stages;
    if (!steps.empty() && s <= steps.back()) s = steps.back() + 1;
    steps.push_back(s);
  }
  return steps;
}

int64_t indicator_window_steps(const PrecisionConfig& precision, int64_t steps_per_epoch) {
  return precision.pfq_window_iterations > 0 ? precision.pfq_window_iterations : steps_per_epoch;
}

namespace {

// DFQ and FracTrain: the stem runs FP32 (DESIGN.md 4.2), the classifier as the policy says, head layers outside
// the blocks (MobileNetV2's last 1x1 conv) at FW-w/BW-8 like a quantized classifier (in FP32 that one conv would
// cost more than all the gated blocks), the gates the rest.
std::unique_ptr<PrecisionController> make_dynamic_controller(const RunConfig& config, const QuantizedModel& model) {
  const auto* gated = dynamic_cast<const GatedNetwork*>(&model);
  if (!gated) throw Error("precision.mode = " + config.precision.mode + " needs the gated form of " + config.model.name);
  const DfqConfig& dfq = config.dfq;
  QuantizationPolicy policy = quantization_policy_of(config.precision);
  policy.quantize_first_layer = false;
  PrecisionPlan plan = make_static_plan(model, Precision::full(), policy);
  const LayerPrecision outside_blocks = LayerPrecision::uniform(Precision::fw_bw(gated->option_set().weight_bits(), 8));
  if (config.precision.quantize_classifier) plan.set_layer(model.classifier_name(), outside_blocks);
  for (const auto& layer : model.head_layer_names()) plan.set_layer(layer, outside_blocks);
  CostSteering steering;
  steering.beta = dfq.beta;
  steering.dead_band = dfq.dead_band;
  steering.blocks_only = dfq.cp_scope == "blocks";
  OptionSet options = gated->option_set();
  if (config.precision.mode == "dfq")
    return DynamicController::dfq(std::move(options), std::move(plan), dfq.target_cp, steering,
                                  gated->gated_blocks());
  PlateauSettings settings;
  settings.eps = config.precision.pfq_eps;
  settings.alpha = config.precision.pfq_alpha;
  return DynamicController::fractrain(std::move(options), std::move(plan),
                                      fractrain_targets(dfq.target_cp, dfq.cp_step, static_cast<int>(dfq.stages)),
                                      steering, settings, gated->gated_blocks());
}

}  // namespace

std::unique_ptr<PrecisionController> make_precision_controller(const RunConfig& config, const QuantizedModel& model,
                                                               int64_t steps_per_epoch, int64_t total_steps) {
  const PrecisionConfig& precision = config.precision;
  validate_precision_schedule(precision);
  validate_dfq(config);
  if (is_dynamic_mode(precision.mode)) return make_dynamic_controller(config, model);
  const QuantizationPolicy policy = quantization_policy_of(precision);
  if (precision.mode == "static") {
    const Precision p = static_precision_of(precision);
    return std::make_unique<StaticController>(p, make_static_plan(model, p, policy));
  }
  std::vector<Precision> stages;
  std::vector<PrecisionPlan> plans;
  for (size_t i = 0; i < precision.pfq_fw.size(); ++i) {
    stages.push_back(Precision::fw_bw(static_cast<int>(precision.pfq_fw[i]), static_cast<int>(precision.pfq_bw[i])));
    plans.push_back(make_static_plan(model, stages.back(), policy));
  }
  if (precision.mode == "pfq-manual")
    return ProgressiveController::manual(std::move(stages), std::move(plans),
                                         manual_switch_steps(precision, steps_per_epoch, total_steps), steps_per_epoch);
  PlateauSettings settings;
  settings.eps = precision.pfq_eps;
  settings.alpha = precision.pfq_alpha;
  return ProgressiveController::automatic(std::move(stages), std::move(plans), settings);
}

}  // namespace fractrain
