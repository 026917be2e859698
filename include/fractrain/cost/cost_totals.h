#pragma once
// Cost over a period (a step, an epoch, a run), per layer, and its totals: per pass, `cp` against FP32, the
// paper's "MACs", and the variant that counts only the blocks (the layers the paper gates).
#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

#include "fractrain/cost/layer_cost.h"
#include "fractrain/cost/layer_profile.h"

namespace fractrain {

// Per-layer cost of the training samples of a period; layers are aligned with the ModelProfile's.
struct CostPeriod {
  int64_t samples = 0;
  std::vector<LayerCost> layers;

  explicit CostPeriod(size_t layer_count = 0) : layers(layer_count) {}
  CostPeriod& operator+=(const CostPeriod& o);
  void clear();
};

struct CostTotals {
  int64_t samples = 0;
  PassCosts passes{};                // executed, summed over layers
  double paper_bit_macs = 0;         // every layer, all three passes
  double paper_bit_macs_blocks = 0;  // block layers only
  // FP32 references of the paper's convention: forward MACs of the whole network (of its blocks) x samples.
  double forward_macs = 0, forward_macs_blocks = 0;

  PassCost total() const;
  // Percent of FP32: bit-MACs / (3 x 32 x 32 x forward MACs), every layer and pass counted (DESIGN.md 4.5).
  double cp() const;
  double cp_blocks() const;
  // The paper's "MACs": cp x 3 x forward MACs x samples, i.e. bit-MACs in units of one 32x32-bit MAC.
  double paper_macs() const;
  double paper_macs_blocks() const;
  // The same run repeated k times (a static run's steps all cost the same).
  CostTotals scaled(double k) const;
};

CostTotals summarize(const CostPeriod& period, const ModelProfile& profile);

// What `forward_macs` forward MACs cost in FP32 in all three passes, in bit-MACs: cp's denominator.
double fp32_paper_bit_macs(double forward_macs);

// What was spent between two snapshots of running totals (`earlier` a prefix of `later`), e.g. one PFQ stage.
CostTotals difference(const CostTotals& later, const CostTotals& earlier);

nlohmann::json to_json(const PassCost& cost);
// Totals with per-pass breakdowns, cp, paper MACs, energy and latency.
nlohmann::json to_json(const CostTotals& totals);

// Exact state for checkpoints (per layer, by name), and back. Throws fractrain::Error naming `where` when the
// state does not fit the profile.
nlohmann::json period_state(const CostPeriod& period, const ModelProfile& profile);
CostPeriod period_from_state(const nlohmann::json& state, const ModelProfile& profile, const std::string& where);

}  // namespace fractrain
