#pragma once
// The report `fractrain train` prints when a run ends: what ran, how far, how well, how fast, and what it cost
// against the FP32 and FW-8/BW-8 references (and per stage for a staged precision).
#include "fractrain/cost/cost_meter.h"
#include "fractrain/train/run_summary.h"

namespace fractrain {

// Prints to stdout. The meter supplies the side-by-side cost comparison, which summary.json keeps only in part.
void print_run_summary(const RunSummary& summary, const CostMeter& meter);

}  // namespace fractrain
