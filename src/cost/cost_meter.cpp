#include "fractrain/cost/cost_meter.h"

#include <ATen/ATen.h>

#include "fractrain/cost/static_cost.h"
#include "fractrain/util/device_constant.h"
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
  if (e.training) take_execution(e, step_);
}

void CostMeter::take_execution(const LayerExecution& e, CostPeriod& into) {
  if (deferred_)
    recorded_.push_back(RecordedExecution{e.layer, e.kind, e.macs_per_sample, e.batch, e.precision});
  else
    count_execution(into, e.layer, e.macs_per_sample, e.batch, e.precision);
}

void CostMeter::on_layer_by_option(const LayerExecutionByOption& e) {
  if (!e.training) return;
  if (profile_.index_of(e.layer) < 0)  // now, not when the counts are read
    throw Error("cost meter: layer '" + e.layer + "' is not in the cost profile of " + profile_.model() +
                " (profile the model the meter is attached to)");
  step_charges_.push_back(OptionCharge{e.layer, e.kind, e.macs_per_sample, e.options, e.option_counts});
}

void CostMeter::count_charges(std::vector<UnreadStep*> steps) {
  std::vector<at::Tensor> counts;
  for (const UnreadStep* s : steps)
    for (const OptionCharge& c : s->charges) counts.push_back(c.counts.to(at::kLong).reshape({-1}));
  if (counts.empty()) return;
  const at::Tensor host = at::cat(counts).to(at::kCPU).contiguous();  // the one wait for the device
  const int64_t* next = host.data_ptr<int64_t>();
  for (UnreadStep* s : steps) {
    for (const OptionCharge& c : s->charges) {
      const std::vector<int64_t> option_counts(next, next + c.options.size());
      next += c.options.size();
      const LayerPrecision ran = samples_by_option(c.options, option_counts);
      if (ran.samples() > 0)
        take_execution(LayerExecution{c.layer, c.kind, c.macs_per_sample, ran.samples(), ran, true}, s->counted);
    }
    s->charges.clear();
  }
}

std::vector<CostMeter::RecordedExecution> CostMeter::take_recorded() {
  std::vector<RecordedExecution> out;
  out.swap(recorded_);
  return out;
}

void CostMeter::count(const RecordedExecution& e) {
  count_execution(step_, e.layer, e.macs_per_sample, e.batch, e.precision);
}

void CostMeter::count_execution(CostPeriod& into, const std::string& layer, int64_t macs_per_sample, int64_t batch,
                                const LayerPrecision& precision) {
  const int64_t i = profile_.index_of(layer);
  if (i < 0)
    throw Error("cost meter: layer '" + layer + "' is not in the cost profile of " + profile_.model() +
                " (profile the model the meter is attached to)");
  into.layers[i] += layer_cost(profile_.layers()[i], macs_per_sample, batch, precision, hardware_);
}

void CostMeter::end_step(int64_t samples) {
  if (reads_deferred_ && (!step_charges_.empty() || !unread_steps_.empty())) {
    unread_steps_.push_back(UnreadStep{step_, std::move(step_charges_), samples, false});
    step_charges_.clear();
    step_.clear();
    return;
  }
  count_step_charges();
  close_step(samples);
}

// The step in progress's option counts, read and counted into it (one copy).
void CostMeter::count_step_charges() {
  if (step_charges_.empty()) return;
  UnreadStep step{std::move(step_), std::move(step_charges_), 0, false};
  step_charges_.clear();
  count_charges({&step});
  step_ = std::move(step.counted);
}

void CostMeter::read_pending() {
  if (unread_steps_.empty()) return;
  std::vector<UnreadStep*> steps;
  for (UnreadStep& s : unread_steps_) steps.push_back(&s);
  count_charges(steps);
  std::vector<UnreadStep> unread;
  unread.swap(unread_steps_);
  // The step in progress (none at the trainer's read points) waits while the read ones close in order.
  CostPeriod in_progress = std::move(step_);
  for (UnreadStep& s : unread) {
    step_ = std::move(s.counted);
    close_step(s.samples);
    if (s.ends_epoch) close_epoch();
  }
  step_ = std::move(in_progress);
}

void CostMeter::refuse_while_unread(const char* what) const {
  if (!unread_steps_.empty())
    throw Error(std::string("cost meter: ") + what + " asked for while " + std::to_string(unread_steps_.size()) +
                " steps' option counts are unread on the device (call read_pending() first)");
}

const CostLedger& CostMeter::ledger() const {
  refuse_while_unread("the ledger");
  return ledger_;
}

void CostMeter::close_step(int64_t samples) {
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

CostTotals CostMeter::step_in_progress(int64_t samples) {
  count_step_charges();
  CostPeriod step = step_;
  step.samples = samples;
  return summarize(step, profile_);
}

CostMeter::DeviceCp CostMeter::step_in_progress_on_device(int64_t samples, const c10::Device& device) const {
  CostPeriod counted = step_;
  counted.samples = samples;
  const CostTotals host = summarize(counted, profile_);
  const auto on_device = at::TensorOptions().dtype(at::kDouble).device(device);
  // Filled on the device from a scalar argument: no copy from the host.
  at::Tensor bit_macs = at::full({}, host.paper_bit_macs, on_device);
  at::Tensor bit_macs_blocks = at::full({}, host.paper_bit_macs_blocks, on_device);
  if (!step_charges_.empty()) {
    // Per charge and option, the paper's bit-MACs of one sample there (0 for skip): the counts' weights.
    std::vector<at::Tensor> counts;
    std::vector<double> per_sample, per_sample_blocks;
    for (const OptionCharge& c : step_charges_) {
      counts.push_back(c.counts.reshape({-1}));
      const int64_t i = profile_.index_of(c.layer);
      const LayerProfile& layer = profile_.layers()[static_cast<size_t>(i)];
      for (const Precision& p : c.options) {
        const double v = p.skip ? 0.0
                                : layer_cost(layer, c.macs_per_sample, 1, LayerPrecision::uniform(p), hardware_)
                                      .paper_bit_macs;
        per_sample.push_back(v);
        per_sample_blocks.push_back(layer.role == LayerRole::Block ? v : 0.0);
      }
    }
    const at::Tensor ran = at::cat(counts).to(at::kDouble);
    bit_macs = bit_macs + (ran * device_constant(per_sample, device)).sum();
    bit_macs_blocks = bit_macs_blocks + (ran * device_constant(per_sample_blocks, device)).sum();
  }
  // As CostTotals::cp(): 100 x bit-MACs / FP32 bit-MACs, the same operations in the same order.
  const auto percent = [&](const at::Tensor& bits, double forward_macs) {
    return forward_macs > 0 ? bits.mul(100.0).div(fp32_paper_bit_macs(forward_macs)) : at::zeros({}, on_device);
  };
  return {percent(bit_macs, host.forward_macs), percent(bit_macs_blocks, host.forward_macs_blocks)};
}

CostMeter::StepRecord CostMeter::take_step_in_progress() {
  StepRecord record{step_, std::move(step_charges_)};
  step_charges_.clear();
  step_.clear();
  return record;
}

void CostMeter::charge(const StepRecord& record) {
  for (size_t i = 0; i < step_.layers.size() && i < record.counted.layers.size(); ++i)
    step_.layers[i] += record.counted.layers[i];
  for (const OptionCharge& c : record.charges) {
    OptionCharge copy = c;
    copy.counts = c.counts.clone();  // queued on the device after the replay that wrote it
    step_charges_.push_back(std::move(copy));
  }
}

void CostMeter::end_epoch() {
  if (!unread_steps_.empty()) {
    unread_steps_.back().ends_epoch = true;
    return;
  }
  close_epoch();
}

void CostMeter::close_epoch() {
  ledger_.end_epoch();
  for (auto& r : references_) r.ledger.end_epoch();
}

const CostLedger& CostMeter::reference(const std::string& name) const {
  refuse_while_unread("a reference ledger");
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
  refuse_while_unread("the state");
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
  step_charges_.clear();
  unread_steps_.clear();
}

}  // namespace fractrain
