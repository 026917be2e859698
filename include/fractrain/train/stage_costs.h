#pragma once
// The cost spent in each precision stage of a run (PFQ): the cost meter's running totals are copied when a stage
// starts, and the stage's cost is what was added since.
#include <nlohmann/json.hpp>

#include "fractrain/cost/cost_meter.h"
#include "fractrain/precision/precision_controller.h"

namespace fractrain {

class StageCosts {
 public:
  // Starts stage 0 at the meter's current totals (a fresh run: zero).
  explicit StageCosts(const CostMeter& meter);

  // Closes the stage in progress at a turning point (the meter holds the totals up to it).
  void close_stage(const CostMeter& meter, int stage, const std::string& label, int64_t step);
  // The closed stages, then the one in progress up to now: stage, precision, first/last step, cost.
  nlohmann::json summary(const CostMeter& meter, int stage, const std::string& label, int64_t step) const;

  nlohmann::json state(const CostMeter& meter) const;
  // Throws fractrain::Error naming `where` when the state does not fit the meter's model.
  void restore(const nlohmann::json& state, const CostMeter& meter, const std::string& where);

 private:
  nlohmann::json record(const CostMeter& meter, int stage, const std::string& label, int64_t step) const;

  CostPeriod start_;  // the run's totals when the stage in progress started
  int64_t start_step_ = 0;
  nlohmann::json closed_ = nlohmann::json::array();
};

}  // namespace fractrain
