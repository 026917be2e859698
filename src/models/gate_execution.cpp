#include "fractrain/models/gate_execution.h"

namespace fractrain {

const NameTable<GateExecution>& gate_execution_names() {
  static const NameTable<GateExecution> table("DFQ execution", {{GateExecution::Mixed, "mixed"},
                                                                {GateExecution::Candidates, "candidates"},
                                                                {GateExecution::Masked, "masked"}});
  return table;
}

}  // namespace fractrain
