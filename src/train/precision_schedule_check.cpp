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

void validate_precision_schedule(const PrecisionConfig& p) {
  effective_error_weight_ranges(p);  // throws for a combination no execution can run
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
  const bool by_epochs = !p.pfq_switch_epochs.empty(), by_iterations = !p.pfq_switch_iterations.empty();
  if (p.mode == PrecisionMode::PfqAuto && (by_epochs || by_iterations))
    throw Error("precision.pfq_switch_epochs / pfq_switch_iterations are for pfq-manual; pfq-auto finds its "
                "turning points from the training loss (leave them [])");
  if (by_epochs && by_iterations)
    throw Error("precision.pfq_switch_epochs and precision.pfq_switch_iterations are both set: give one of them");
  const auto& switches = by_epochs ? p.pfq_switch_epochs : p.pfq_switch_iterations;
  if ((by_epochs || by_iterations) && switches.size() + 1 != p.pfq_fw.size())
    throw Error(fmt::format("precision.{} has {} switch points but a schedule of {} stages needs {}",
                            by_epochs ? "pfq_switch_epochs" : "pfq_switch_iterations", switches.size(),
                            p.pfq_fw.size(), p.pfq_fw.size() - 1));
}

OptionSet dfq_option_set(const RunConfig& config) {
  const DfqConfig& dfq = config.dfq;
  return OptionSet::parse(dfq.options == "auto" ? OptionSet::default_preset_for(config.model.name) : dfq.options,
                          dfq.weight_bits);
}

void validate_dfq(const RunConfig& config) {
  const PrecisionConfig& p = config.precision;
  const DfqConfig& dfq = config.dfq;
  if (!is_gated(p.mode)) return;
  if (p.fw != 0 || p.bw != 0)
    throw Error(fmt::format("precision.fw = {} / precision.bw = {} are not used in precision.mode = \"{}\" (the "
                            "gates choose among dfq.options); set both to 0",
                            p.fw, p.bw, to_string(p.mode)));
  const OptionSet options = dfq_option_set(config);
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
    if (dfq.cp_scope == "blocks" && (t < lowest || t > highest))
      throw Error(fmt::format("dfq.target_cp: a target of {:.3g}% is outside what the options {} can reach "
                              "({:.3g}% .. {:.3g}% of FP32 in the gated blocks); choose a target in that range",
                              t, options.describe(), lowest, highest));
}

}  // namespace fractrain
