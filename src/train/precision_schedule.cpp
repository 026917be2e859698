#include "fractrain/train/precision_schedule.h"

#include <algorithm>

#include <fmt/format.h>

#include "fractrain/precision/dynamic_controller.h"
#include "fractrain/precision/progressive_controller.h"
#include "fractrain/precision/static_controller.h"
#include "fractrain/train/lr_schedule.h"
#include "fractrain/train/run_components.h"
#include "fractrain/train/run_fraction.h"
#include "fractrain/util/error.h"

namespace fractrain {

std::vector<int64_t> manual_switch_steps(const PrecisionConfig& precision, int64_t steps_per_epoch,
                                         int64_t total_steps) {
  std::vector<int64_t> steps;
  if (!precision.pfq_switch_iterations.empty()) return precision.pfq_switch_iterations;
  for (int64_t epoch : precision.pfq_switch_epochs) steps.push_back(epoch * steps_per_epoch);
  if (!steps.empty()) return steps;
  std::vector<int64_t> nominal;
  for (double fraction : precision.pfq_switch_fractions) nominal.push_back(step_at_fraction(fraction, total_steps));
  const auto stages = static_cast<int64_t>(precision.pfq_fw.size());
  if (nominal.empty())  // equal parts
    for (int64_t i = 1; i < stages; ++i) nominal.push_back(total_steps * i / stages);
  // On a run shorter than the schedule a part may be empty, which the next one's +1 prevents from making the
  // steps equal (ProgressiveController wants them strictly increasing).
  for (int64_t s : nominal) steps.push_back(steps.empty() || s > steps.back() ? s : steps.back() + 1);
  return steps;
}

int64_t indicator_window_steps(const PrecisionConfig& precision, int64_t steps_per_epoch, int64_t total_steps) {
  if (precision.pfq_window_fraction > 0)
    return std::max<int64_t>(1, step_at_fraction(precision.pfq_window_fraction, total_steps));
  return precision.pfq_window_iterations > 0 ? precision.pfq_window_iterations : steps_per_epoch;
}

namespace {

PlateauSettings plateau_settings_of(const PrecisionConfig& precision) {
  PlateauSettings settings;
  settings.eps = precision.pfq_eps;
  settings.alpha = precision.pfq_alpha;
  return settings;
}

// DFQ and FracTrain: the stem runs FP32 (DESIGN.md 4.2), the classifier as the policy says, head layers outside
// the blocks (MobileNetV2's last 1x1 conv) at FW-w/BW-8 like a quantized classifier (in FP32 that one conv would
// cost more than all the gated blocks), the gates the rest.
std::unique_ptr<PrecisionController> make_dynamic_controller(const RunConfig& config, const QuantizedModel& model,
                                                             int64_t steps_per_epoch, int64_t total_steps) {
  const std::vector<std::string> blocks = model.gated_blocks();
  if (blocks.empty())
    throw Error("precision.mode = " + to_string(config.precision.mode) + " needs the gated form of " +
                config.model.name);
  const DfqConfig& dfq = config.dfq;
  OptionSet options = dfq_option_set(config);
  QuantizationPolicy policy = quantization_policy_of(config.precision);
  policy.quantize_first_layer = false;
  PrecisionPlan plan = make_static_plan(model, Precision::full(), policy);
  // FW-w/BW-8 at the option set's width w. The ablation that runs the blocks' weights at another width than the
  // steered one (dfq.steering_weight_bits) changes the weights here too, and nothing else: activations stay at w.
  const int option_width = dfq.steering_weight_bits > 0 ? dfq.steering_weight_bits : options.weight_bits();
  const LayerPrecision outside_blocks =
      LayerPrecision::uniform(Precision{option_width, options.weight_bits(), 8, false});
  if (config.precision.quantize_classifier) plan.set_layer(model.classifier_name(), outside_blocks);
  for (const auto& layer : model.head_layer_names()) plan.set_layer(layer, outside_blocks);
  CostSteering steering;
  steering.beta = dfq.beta;
  steering.dead_band = dfq.dead_band;
  steering.blocks_only = dfq.cp_scope == "blocks";
  steering.weight_bits = dfq.steering_weight_bits;
  if (config.precision.mode == PrecisionMode::Dfq)
    return DynamicController::dfq(std::move(options), std::move(plan), dfq.target_cp, steering, blocks);
  auto fractrain = DynamicController::fractrain(
      std::move(options), std::move(plan), fractrain_targets(dfq.target_cp, dfq.cp_step, static_cast<int>(dfq.stages)),
      steering, plateau_settings_of(config.precision), blocks);
  if (dfq.last_stage_from > 0)
    fractrain->hold_last_stage_from(step_at_fraction(dfq.last_stage_from, total_steps), steps_per_epoch);
  return fractrain;
}

std::unique_ptr<PrecisionController> make_progressive_controller(const RunConfig& config, const QuantizedModel& model,
                                                                 int64_t steps_per_epoch, int64_t total_steps) {
  const PrecisionConfig& precision = config.precision;
  const QuantizationPolicy policy = quantization_policy_of(precision);
  std::vector<Precision> stages;
  std::vector<PrecisionPlan> plans;
  for (size_t i = 0; i < precision.pfq_fw.size(); ++i) {
    stages.push_back(Precision::fw_bw(static_cast<int>(precision.pfq_fw[i]), static_cast<int>(precision.pfq_bw[i])));
    plans.push_back(make_static_plan(model, stages.back(), policy));
  }
  if (precision.mode == PrecisionMode::PfqAuto)
    return ProgressiveController::automatic(std::move(stages), std::move(plans), plateau_settings_of(precision));
  return ProgressiveController::manual(std::move(stages), std::move(plans),
                                       manual_switch_steps(precision, steps_per_epoch, total_steps), steps_per_epoch);
}

std::unique_ptr<PrecisionController> make_controller_of_mode(const RunConfig& config, const QuantizedModel& model,
                                                             int64_t steps_per_epoch, int64_t total_steps) {
  switch (config.precision.mode) {
    case PrecisionMode::Static: {
      const Precision p = static_precision_of(config.precision);
      return std::make_unique<StaticController>(p, make_static_plan(model, p, quantization_policy_of(config.precision)));
    }
    case PrecisionMode::PfqManual:
    case PrecisionMode::PfqAuto:
      return make_progressive_controller(config, model, steps_per_epoch, total_steps);
    case PrecisionMode::Dfq:
    case PrecisionMode::FracTrain:
      return make_dynamic_controller(config, model, steps_per_epoch, total_steps);
  }
  throw Error("internal: precision mode without a controller");
}

}  // namespace

std::vector<std::string> precision_schedule_notes(const PrecisionConfig& precision, int64_t steps_per_epoch,
                                                  int64_t total_steps) {
  if (precision.mode != PrecisionMode::PfqManual) return {};
  const auto switches = manual_switch_steps(precision, steps_per_epoch, total_steps);
  if (switches.back() < total_steps) return {};
  return {fmt::format("the precision schedule's last stage starts at step {} but the run has {} steps; later "
                      "stages will not run",
                      switches.back(), total_steps)};
}

std::unique_ptr<PrecisionController> make_precision_controller(const RunConfig& config, const QuantizedModel& model,
                                                               int64_t steps_per_epoch, int64_t total_steps) {
  validate_precision_schedule(config.precision);
  validate_lr_schedule(config.schedule);
  validate_dfq(config);
  auto controller = make_controller_of_mode(config, model, steps_per_epoch, total_steps);
  model.check_plan(controller->current_plan());
  return controller;
}

}  // namespace fractrain
