#pragma once
// Cost as people read it: side-by-side comparisons with the FP32 and FW-8/BW-8 references, the per-layer table
// of `fractrain cost`, and the JSON of metrics records and run summaries.
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/cost/cost_totals.h"

namespace fractrain {

// 168215168 -> "168,215,168".
std::string format_count(int64_t n);

struct CostColumn {
  std::string name;  // "this run", "fp32", "fw8bw8"
  CostTotals totals;
};

// Rows cp, cp (blocks), paper MACs, bit-MACs per pass and in total, energy, latency; one column each.
std::string format_cost_comparison(const std::vector<CostColumn>& columns);

// This run's totals so far, then each reference's for the same samples.
std::vector<CostColumn> run_comparison(const CostMeter& meter);

// One line for the training log: cp, bit-MACs, energy and latency so far, and the references' energy/latency.
std::string format_cost_line(const CostMeter& meter);

// Flat fields for a metrics record: cp, bit_macs, energy_j, latency_s and <reference>_bit_macs / _energy_j /
// _latency_s (cumulative), plus a nested "cost" object (per pass) for the JSON lines.
std::vector<std::string> cost_metric_columns(const std::vector<std::string>& reference_names);
nlohmann::json cost_metrics_record(const CostMeter& meter);

// The "cost" object of summary.json: hardware, conventions, run and reference totals, per-layer run cost.
nlohmann::json cost_summary_json(const CostMeter& meter);

// The run's cost since `since` (an earlier copy of meter.ledger().run), as to_json(CostTotals): a PFQ stage's.
nlohmann::json cost_since_json(const CostMeter& meter, const CostPeriod& since);

// `fractrain cost`: a row per layer of one step (operand shapes, MACs, widths, bit-MACs per pass, energy,
// latency) for the first period, and the energy of the others (references) per layer.
std::string format_layer_table(const ModelProfile& profile, const PrecisionPlan& plan,
                               const std::vector<std::pair<std::string, CostPeriod>>& steps);

}  // namespace fractrain
