#include "fractrain/nn/execution_mode.h"

namespace fractrain {

const NameTable<ExecutionMode>& execution_mode_names() {
  static const NameTable<ExecutionMode> table(
      "layer execution", {{ExecutionMode::Simulated, "simulated"}, {ExecutionMode::Integer, "integer"}});
  return table;
}

const NameTable<ErrorWeightRanges>& error_weight_ranges_names() {
  static const NameTable<ErrorWeightRanges> table(
      "error-pass weight ranges", {{ErrorWeightRanges::PerOutputChannel, "per_output_channel"},
                                   {ErrorWeightRanges::PerInputChannel, "per_input_channel"}});
  return table;
}

}  // namespace fractrain
