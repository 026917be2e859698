#pragma once
// The training methods a run can use (DESIGN.md 4.3-4.6). Configs, logs and summaries name them through the
// one table in precision_mode.cpp; code compares the enum, never the names.
#include <string>
#include <vector>

#include "fractrain/util/name_table.h"

namespace fractrain {

enum class PrecisionMode {
  Static,     // FP32 or FW-n/BW-m for the whole run (the SBM baseline)
  PfqManual,  // PFQ with stages at fixed steps
  PfqAuto,    // PFQ with stages at the loss indicator's turning points
  Dfq,        // per-sample precision chosen by gates under a cost target
  FracTrain,  // DFQ whose target rises at the loss indicator's turning points
};

// static, pfq-manual, pfq-auto, dfq, fractrain.
const NameTable<PrecisionMode>& precision_mode_names();
inline const std::string& to_string(PrecisionMode mode) { return precision_mode_names().name(mode); }

// DFQ and FracTrain: the model runs its gated form and the gates choose each block's precision.
inline bool is_gated(PrecisionMode mode) { return mode == PrecisionMode::Dfq || mode == PrecisionMode::FracTrain; }
// PFQ: a schedule of FW/BW stages (precision.pfq_*).
inline bool is_progressive(PrecisionMode mode) {
  return mode == PrecisionMode::PfqManual || mode == PrecisionMode::PfqAuto;
}

}  // namespace fractrain
