#include "fractrain/cost/cost_meter.h"

#include "fractrain/cost/static_cost.h"
#include "fractrain/util/error.h"

namespace fractrain {
namespace {

nlohmann::json ledger_state(const CostLedger& ledger, const ModelProfile& profile) {
  return {{"last_step", period_state(ledger.last_step, profile)},
          {"epoch", period_state(ledger.epoch, profile)},
          {"last_epoch", period_state(ledger.last_epoch, profile)},
          {"run", period_state(ledger.run, profile)}};
}

CostLedger ledger_from_state(const nlohmann::json& state, const ModelProfile& profile, const std::string& where) {
  if (!state.is_object()) throw Error(where + ": damaged cost state: a ledger is not an object");
  auto period = [&](const char* key) {
    if (!state.contains(key)) throw Error(where + ": damaged cost state: no '" + std::string(key) + "' period");
    return period_from_state(state.at(key), profile, where);
  };
  CostLedger ledger;
  ledger.last_step = period("last_step");
  ledger.epoch = period("epoch");
  ledger.last_epoch = period("last_epoch");
  ledger.run = period("run");
  return ledger;
}

}  // namespace

CostLedger::CostLedger(size_t layer_count)
    : last_step(layer_count), epoch(layer_count), last_epoch(layer_count), run(layer_count) {}

void CostLedger::add_step(const CostPeriod& step) {
  last_step = step;
  epoch += step;
  run += step;
}

void CostLedger::end_epoch() {
  last_epoch = epoch;
  epoch.clear();
}

CostMeter::CostMeter(ModelProfile profile, HardwareModel hardware)
    : profile_(std::move(profile)),
      hardware_(std::move(hardware)),
      step_(profile_.layers().size()),
      ledger_(profile_.layers().size()) {}

void CostMeter::add_reference(const std::string& name, PrecisionPlan plan) {
  for (const auto& r : references_)
    if (r.name == name) throw Error("cost meter: reference '" + name + "' added twice");
  references_.push_back(Reference{name, std::move(plan), CostLedger(profile_.layers().size()), {}});
}

void CostMeter::on_layer(const LayerExecution& e) {
  if (!e.training) return;
  if (deferred_)
    recorded_.push_back(RecordedExecution{e.layer, e.kind, e.macs_per_sample, e.batch, e.precision});
  else
    count_execution(e.layer, e.macs_per_sample, e.batch, e.precision);
}

std::vector<CostMeter::RecordedExecution> CostMeter::take_recorded() {
  std::vector<RecordedExecution> out;
  out.swap(recorded_);
  return out;
}

void CostMeter::count(const RecordedExecution& e) { count_execution(e.layer, e.macs_per_sample, e.batch, e.precision); }

void CostMeter::count_execution(const std::string& layer, int64_t macs_per_sample, int64_t batch,
                                const LayerPrecision& precision) {
  const int64_t i = profile_.index_of(layer);
  if (i < 0)
    throw Error("cost meter: layer '" + layer + "' is not in the cost profile of " + profile_.model() +
                " (profile the model the meter is attached to)");
  step_.layers[i] += layer_cost(profile_.layers()[i], macs_per_sample, batch, precision, hardware_);
}

void CostMeter::end_step(int64_t samples) {
  step_.samples = samples;
  ledger_.add_step(step_);
  step_.clear();
  for (auto& r : references_) {
    auto it = r.step_by_batch.find(samples);
    if (it == r.step_by_batch.end())
      it = r.step_by_batch.emplace(samples, static_step_cost(profile_, r.plan, samples, hardware_)).first;
    r.ledger.add_step(it->second);
  }
}

CostTotals CostMeter::step_in_progress(int64_t samples) const {
  CostPeriod step = step_;
  step.samples = samples;
  return summarize(step, profile_);
}

void CostMeter::end_epoch() {
  ledger_.end_epoch();
  for (auto& r : references_) r.ledger.end_epoch();
}

const CostLedger& CostMeter::reference(const std::string& name) const {
  for (const auto& r : references_)
    if (r.name == name) return r.ledger;
  throw Error("cost meter: no reference run named '" + name + "'");
}

std::vector<std::string> CostMeter::reference_names() const {
  std::vector<std::string> names;
  for (const auto& r : references_) names.push_back(r.name);
  return names;
}

nlohmann::json CostMeter::state() const {
  nlohmann::json references = nlohmann::json::object();
  for (const auto& r : references_) references[r.name] = ledger_state(r.ledger, profile_);
  return {{"model", profile_.model()}, {"run", ledger_state(ledger_, profile_)}, {"references", references}};
}

void CostMeter::restore(const nlohmann::json& state, const std::string& where) {
  if (!state.is_object() || !state.contains("run") || !state.contains("references"))
    throw Error(where + ": damaged cost state (expected 'run' and 'references')");
  CostLedger run = ledger_from_state(state.at("run"), profile_, where);
  std::vector<CostLedger> references;
  for (const auto& r : references_) {
    if (!state.at("references").contains(r.name)) throw Error(where + ": cost state has no reference '" + r.name + "'");
    references.push_back(ledger_from_state(state.at("references").at(r.name), profile_, where));
  }
  ledger_ = std::move(run);
  for (size_t i = 0; i < references_.size(); ++i) references_[i].ledger = std::move(references[i]);
  step_.clear();
}

}  // namespace fractrain
