// The cross-key rules of the precision section (each key's own range is checked by the key table).
#include <fmt/format.h>

#include "fractrain/precision/dynamic_controller.h"
#include "fractrain/precision/option_set.h"
#include "fractrain/train/run_config.h"
#include "fractrain/util/error.h"

namespace fractrain {

bool effective_snap_zero_point(const PrecisionConfig& p) {
  return p.snap_zero_point || p.execution == ExecutionMode::Integer;
}

ErrorWeightRanges effective_error_weight_ranges(const PrecisionConfig& p) {
  const bool integer = p.execution == ExecutionMode::Integer;
  if (p.error_weight_ranges == "auto")
    return integer ? ErrorWeightRanges::PerInputChannel : ErrorWeightRanges::PerOutputChannel;
  const ErrorWeightRanges ranges =
      error_weight_ranges_names().parse(p.error_weight_ranges, "precision.error_weight_ranges");
  // An integer error pass sums over output channels, along which a per-output-channel scale varies: it cannot
  // factor out of the sum, so there is no integer kernel for it (nn/execution_mode.h).
  if (integer && ranges == ErrorWeightRanges::PerOutputChannel)
    throw Error("precision.error_weight_ranges = \"per_output_channel\" cannot run with precision.execution = "
                "\"integer\": integer execution quantizes the error backward's weight per input channel (a per-"
                "output-channel scale does not factor out of dX's sum over output channels); set "
                "precision.error_weight_ranges to \"auto\" or \"per_input_channel\", or precision.execution to "
                "\"simulated\"");
  return ranges;
}

namespace {

// The indicator's window and the static weight width, which every mode reads or must leave unset.
void validate_window_and_weight_bits(const PrecisionConfig& p) {
  if (p.pfq_window_fraction > 0 && p.pfq_window_iterations > 0)
    throw Error(fmt::format("precision.pfq_window_fraction = {} and precision.pfq_window_iterations = {} are both "
                            "set: give the indicator's window one way (set the other to 0)",
                            p.pfq_window_fraction, p.pfq_window_iterations));
  if (p.weight_bits != 0 && p.mode != PrecisionMode::Static)
    throw Error(fmt::format("precision.weight_bits = {} is for precision.mode = \"static\" (pfq stages give their "
                            "own widths; dfq and fractrain have dfq.weight_bits); set it to 0",
                            p.weight_bits));
}

}  // namespace

void validate_precision_schedule(const PrecisionConfig& p) {
  effective_error_weight_ranges(p);  // throws for a combination no execution can run
  validate_window_and_weight_bits(p);
  if (!is_progressive(p.mode)) return;
  // Refused rather than ignored: a recipe asking for fw8bw8 and PFQ at once is ambiguous.
  if (p.fw != 0 || p.bw != 0)
    throw Error(fmt::format("precision.fw = {} / precision.bw = {} are not used in precision.mode = \"{}\" (the "
                            "stages come from precision.pfq_fw / pfq_bw); set both to 0",
                            p.fw, p.bw, to_string(p.mode)));
  if (p.pfq_fw.size() != p.pfq_bw.size())
    throw Error(fmt::format("precision.pfq_fw has {} stages but precision.pfq_bw has {}: give one FW and one BW "
                            "width per stage, e.g. pfq_fw = [3, 4, 6, 8], pfq_bw = [6, 6, 8, 8]",
                            p.pfq_fw.size(), p.pfq_bw.size()));
  // The switch points' keys that are set, with how many points each gives.
  std::vector<std::pair<const char*, size_t>> given;
  if (!p.pfq_switch_epochs.empty()) given.emplace_back("pfq_switch_epochs", p.pfq_switch_epochs.size());
  if (!p.pfq_switch_iterations.empty()) given.emplace_back("pfq_switch_iterations", p.pfq_switch_iterations.size());
  if (!p.pfq_switch_fractions.empty()) given.emplace_back("pfq_switch_fractions", p.pfq_switch_fractions.size());
  if (p.mode == PrecisionMode::PfqAuto && !given.empty())
    throw Error(fmt::format("precision.{} is for pfq-manual; pfq-auto finds its turning points from the training "
                            "loss (leave it [])",
                            given.front().first));
  if (given.size() > 1)
    throw Error(fmt::format("precision.{} and precision.{} are both set: give the switch points one way",
                            given[0].first, given[1].first));
  if (!given.empty() && given.front().second + 1 != p.pfq_fw.size())
    throw Error(fmt::format("precision.{} has {} switch points but a schedule of {} stages needs {}",
                            given.front().first, given.front().second, p.pfq_fw.size(), p.pfq_fw.size() - 1));
}

OptionSet dfq_option_set(const RunConfig& config) {
  const DfqConfig& dfq = config.dfq;
  return OptionSet::parse(dfq.options == "auto" ? OptionSet::default_preset_for(config.model.name) : dfq.options,
                          dfq.weight_bits);
}

void validate_dfq(const RunConfig& config) {
  const PrecisionConfig& p = config.precision;
  const DfqConfig& dfq = config.dfq;
  if (dfq.last_stage_from > 0 && p.mode != PrecisionMode::FracTrain)
    throw Error(fmt::format("dfq.last_stage_from = {} holds FracTrain's last target stage, but precision.mode = "
                            "\"{}\"; set it to 0 or use precision.mode = \"fractrain\"",
                            dfq.last_stage_from, to_string(p.mode)));
  if (!is_gated(p.mode)) {
    if (dfq.steering_weight_bits != 0 || dfq.allow_unreachable_targets)
      throw Error(fmt::format("dfq.steering_weight_bits / dfq.allow_unreachable_targets steer DFQ's gates, but "
                              "precision.mode = \"{}\" has none; remove them or use dfq or fractrain",
                              to_string(p.mode)));
    return;
  }
  if (p.fw != 0 || p.bw != 0)
    throw Error(fmt::format("precision.fw = {} / precision.bw = {} are not used in precision.mode = \"{}\" (the "
                            "gates choose among dfq.options); set both to 0",
                            p.fw, p.bw, to_string(p.mode)));
  if (dfq.steering_weight_bits != 0 && dfq.cp_scope != "blocks")
    throw Error(fmt::format("dfq.steering_weight_bits = {} counts the gated blocks' cp, but dfq.cp_scope = \"{}\"; "
                            "set dfq.cp_scope = \"blocks\"",
                            dfq.steering_weight_bits, dfq.cp_scope));
  // The targets are steered, so reachable or not is a question of the steering width's costs.
  const OptionSet executed = dfq_option_set(config);
  const OptionSet options =
      dfq.steering_weight_bits != 0 ? executed.with_weight_bits(dfq.steering_weight_bits) : executed;
  double lowest = 100, highest = 0;
  for (size_t k = 0; k < options.size(); ++k) {
    lowest = std::min(lowest, 100 * options.relative_cost(k));
    highest = std::max(highest, 100 * options.relative_cost(k));
  }
  const std::vector<double> targets = p.mode == PrecisionMode::FracTrain
                                          ? fractrain_targets(dfq.target_cp, dfq.cp_step, static_cast<int>(dfq.stages))
                                          : std::vector<double>{dfq.target_cp};
  // The reachable range is that of the gated blocks; the network's cp adds the FP32 stem, so only warn there.
  for (double t : targets)
    if (dfq.cp_scope == "blocks" && (t < lowest || t > highest) && !dfq.allow_unreachable_targets)
      throw Error(fmt::format("dfq.target_cp: a target of {:.3g}% is outside what the options {} can reach "
                              "({:.3g}% .. {:.3g}% of FP32 in the gated blocks); choose a target in that range "
                              "(or, for an ablation, set dfq.allow_unreachable_targets = true)",
                              t, options.describe(), lowest, highest));
}

}  // namespace fractrain
