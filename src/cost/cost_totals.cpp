#include "fractrain/cost/cost_totals.h"

#include <iterator>

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

nlohmann::json pass_state(const PassCost& p) {
  return nlohmann::json::array({p.macs, p.bit_macs, p.bitbrick_ops, p.bits_moved, p.energy_j, p.latency_s});
}

PassCost pass_from_state(const nlohmann::json& j, const std::string& where) {
  PassCost p;
  double* fields[] = {&p.macs, &p.bit_macs, &p.bitbrick_ops, &p.bits_moved, &p.energy_j, &p.latency_s};
  if (!j.is_array() || j.size() != std::size(fields))
    throw Error(where + ": damaged cost state: a pass is not an array of " + std::to_string(std::size(fields)) +
                " numbers");
  for (size_t i = 0; i < std::size(fields); ++i) *fields[i] = j.at(i).get<double>();
  return p;
}

double percent_of_fp32(double bit_macs, double forward_macs) {
  return forward_macs > 0 ? 100.0 * bit_macs / fp32_paper_bit_macs(forward_macs) : 0.0;
}

}  // namespace

double fp32_paper_bit_macs(double forward_macs) {
  return static_cast<double>(kPassCount * kFullPrecisionBitProduct) * forward_macs;
}

CostPeriod& CostPeriod::operator+=(const CostPeriod& o) {
  samples += o.samples;
  if (layers.size() < o.layers.size()) layers.resize(o.layers.size());
  for (size_t i = 0; i < o.layers.size(); ++i) layers[i] += o.layers[i];
  return *this;
}

void CostPeriod::clear() {
  samples = 0;
  for (auto& l : layers) l = LayerCost{};
}

PassCost CostTotals::total() const {
  PassCost t;
  for (const auto& p : passes) t += p;
  return t;
}

double CostTotals::cp() const { return percent_of_fp32(paper_bit_macs, forward_macs); }
double CostTotals::cp_blocks() const { return percent_of_fp32(paper_bit_macs_blocks, forward_macs_blocks); }
double CostTotals::paper_macs() const { return paper_bit_macs / kFullPrecisionBitProduct; }
double CostTotals::paper_macs_blocks() const { return paper_bit_macs_blocks / kFullPrecisionBitProduct; }

CostTotals CostTotals::scaled(double k) const {
  CostTotals t = *this;
  t.samples = static_cast<int64_t>(static_cast<double>(samples) * k);
  for (auto& p : t.passes) {
    for (double* field : {&p.macs, &p.bit_macs, &p.bitbrick_ops, &p.bits_moved, &p.energy_j, &p.latency_s})
      *field *= k;
  }
  for (double* field : {&t.paper_bit_macs, &t.paper_bit_macs_blocks, &t.forward_macs, &t.forward_macs_blocks})
    *field *= k;
  return t;
}

CostTotals summarize(const CostPeriod& period, const ModelProfile& profile) {
  CostTotals t;
  t.samples = period.samples;
  for (size_t i = 0; i < period.layers.size() && i < profile.layers().size(); ++i) {
    const LayerCost& layer = period.layers[i];
    for (int p = 0; p < kPassCount; ++p) t.passes[p] += layer.passes[p];
    t.paper_bit_macs += layer.paper_bit_macs;
    if (profile.layers()[i].role == LayerRole::Block) t.paper_bit_macs_blocks += layer.paper_bit_macs;
  }
  const double samples = static_cast<double>(period.samples);
  t.forward_macs = static_cast<double>(profile.forward_macs()) * samples;
  t.forward_macs_blocks = static_cast<double>(profile.forward_macs(LayerRole::Block)) * samples;
  return t;
}

CostTotals difference(const CostTotals& later, const CostTotals& earlier) {
  constexpr double PassCost::*kPassFields[] = {&PassCost::macs,       &PassCost::bit_macs, &PassCost::bitbrick_ops,
                                               &PassCost::bits_moved, &PassCost::energy_j, &PassCost::latency_s};
  constexpr double CostTotals::*kTotalFields[] = {&CostTotals::paper_bit_macs, &CostTotals::paper_bit_macs_blocks,
                                                  &CostTotals::forward_macs, &CostTotals::forward_macs_blocks};
  CostTotals t = later;
  t.samples -= earlier.samples;
  for (size_t i = 0; i < t.passes.size(); ++i)
    for (auto field : kPassFields) t.passes[i].*field -= earlier.passes[i].*field;
  for (auto field : kTotalFields) t.*field -= earlier.*field;
  return t;
}

nlohmann::json to_json(const PassCost& c) {
  return {{"macs", c.macs},         {"bit_macs", c.bit_macs}, {"bitbrick_ops", c.bitbrick_ops},
          {"bits_moved", c.bits_moved}, {"energy_j", c.energy_j}, {"latency_s", c.latency_s}};
}

nlohmann::json to_json(const CostTotals& t) {
  nlohmann::json passes = nlohmann::json::object();
  for (Pass pass : kPasses) passes[pass_name(pass)] = to_json(t.passes[static_cast<int>(pass)]);
  const PassCost total = t.total();
  return {{"samples", t.samples},
          {"cp_percent", t.cp()},
          {"cp_blocks_percent", t.cp_blocks()},
          {"paper_macs", t.paper_macs()},
          {"paper_macs_blocks", t.paper_macs_blocks()},
          {"bit_macs", total.bit_macs},
          {"energy_j", total.energy_j},
          {"latency_s", total.latency_s},
          {"passes", passes}};
}

nlohmann::json period_state(const CostPeriod& period, const ModelProfile& profile) {
  nlohmann::json layers = nlohmann::json::object();
  for (size_t i = 0; i < period.layers.size() && i < profile.layers().size(); ++i) {
    const LayerCost& l = period.layers[i];
    nlohmann::json entry = {{"paper_bit_macs", l.paper_bit_macs}};
    for (Pass pass : kPasses) entry[pass_name(pass)] = pass_state(l.passes[static_cast<int>(pass)]);
    layers[profile.layers()[i].name] = entry;
  }
  return {{"samples", period.samples}, {"layers", layers}};
}

CostPeriod period_from_state(const nlohmann::json& state, const ModelProfile& profile, const std::string& where) {
  CostPeriod period(profile.layers().size());
  try {
    period.samples = state.at("samples").get<int64_t>();
    const auto& layers = state.at("layers");
    if (layers.size() != profile.layers().size())
      throw Error(where + ": cost state has " + std::to_string(layers.size()) + " layers, model " +
                  profile.model() + " has " + std::to_string(profile.layers().size()));
    for (size_t i = 0; i < profile.layers().size(); ++i) {
      const std::string& name = profile.layers()[i].name;
      if (!layers.contains(name)) throw Error(where + ": cost state has no layer '" + name + "'");
      const auto& entry = layers.at(name);
      period.layers[i].paper_bit_macs = entry.at("paper_bit_macs").get<double>();
      for (Pass pass : kPasses)
        period.layers[i].passes[static_cast<int>(pass)] = pass_from_state(entry.at(pass_name(pass)), where);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": damaged cost state: " + e.what());
  }
  return period;
}

}  // namespace fractrain
