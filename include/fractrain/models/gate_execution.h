#pragma once
// How a DFQ-gated model executes its gates' decisions in training (DESIGN.md 4.5, docs/dfq.md).
#include <string>

#include "fractrain/util/name_table.h"

namespace fractrain {

// mixed: each gated block runs once, every sample quantized at its own option; skipped samples are not
// computed. candidates: every option runs on the whole batch and outputs are mixed per sample (the released
// code's way; K times the compute, training only). masked: mixed in fixed shapes, every sample computed and
// those that skip masked out, so that the decisions never leave the device (models/gated_block.h; for GPUs).
enum class GateExecution { Mixed, Candidates, Masked };

// mixed, candidates, masked.
const NameTable<GateExecution>& gate_execution_names();
inline const std::string& to_string(GateExecution execution) { return gate_execution_names().name(execution); }

}  // namespace fractrain
