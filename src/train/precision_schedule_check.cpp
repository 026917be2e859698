// The cross-key rules of the precision section (each key's own range is checked by the key table).
#include <fmt/format.h>

#include "fractrain/train/run_config.h"
#include "fractrain/util/error.h"

namespace fractrain {

void validate_precision_schedule(const PrecisionConfig& p) {
  if (p.mode == "static") return;
  // Refused rather than ignored: a recipe asking for fw8bw8 and PFQ at once is ambiguous.
  if (p.fw != 0 || p.bw != 0)
    throw Error(fmt::format("precision.fw = {} / precision.bw = {} are not used in precision.mode = \"{}\" (the "
                            "stages come from precision.pfq_fw / pfq_bw); set both to 0",
                            p.fw, p.bw, p.mode));
  if (p.pfq_fw.size() != p.pfq_bw.size())
    throw Error(fmt::format("precision.pfq_fw has {} stages but precision.pfq_bw has {}: give one FW and one BW "
                            "width per stage, e.g. pfq_fw = [3, 4, 6, 8], pfq_bw = [6, 6, 8, 8]",
                            p.pfq_fw.size(), p.pfq_bw.size()));
  const bool by_epochs = !p.pfq_switch_epochs.empty(), by_iterations = !p.pfq_switch_iterations.empty();
  if (p.mode == "pfq-auto" && (by_epochs || by_iterations))
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

}  // namespace fractrain
