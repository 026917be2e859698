#include "fractrain/train/stage_costs.h"

#include "fractrain/cost/cost_report.h"
#include "fractrain/util/error.h"

namespace fractrain {

StageCosts::StageCosts(const CostMeter& meter) : start_(meter.ledger().run) {}

nlohmann::json StageCosts::record(const CostMeter& meter, int stage, const std::string& label, int64_t step) const {
  return {{"stage", stage},
          {"precision", label},
          {"first_step", start_step_},
          {"steps", step - start_step_},
          {"cost", cost_since_json(meter, start_)}};
}

void StageCosts::close_stage(const CostMeter& meter, int stage, const std::string& label, int64_t step) {
  closed_.push_back(record(meter, stage, label, step));
  start_ = meter.ledger().run;
  start_step_ = step;
}

nlohmann::json StageCosts::summary(const CostMeter& meter, int stage, const std::string& label,
                                   int64_t step) const {
  nlohmann::json all = closed_;
  all.push_back(record(meter, stage, label, step));
  return all;
}

nlohmann::json StageCosts::state(const CostMeter& meter) const {
  return {{"closed", closed_}, {"start_step", start_step_}, {"start", period_state(start_, meter.profile())}};
}

void StageCosts::restore(const nlohmann::json& state, const CostMeter& meter, const std::string& where) {
  try {
    closed_ = state.at("closed");
    start_step_ = state.at("start_step").get<int64_t>();
    start_ = period_from_state(state.at("start"), meter.profile(), where);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": damaged per-stage cost in checkpoint: " + e.what());
  }
}

}  // namespace fractrain
