#include "fractrain/cost/cost_report.h"

#include <fmt/format.h>

#include <algorithm>

namespace fractrain {
namespace {

std::string percent(double x) { return fmt::format("{:.2f}%", x); }
std::string scientific(double x) { return fmt::format("{:.3e}", x); }
std::string general(double x) { return fmt::format("{:.4g}", x); }

std::string joined(const std::vector<int64_t>& dims) {
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? "x" : "") + std::to_string(dims[i]);
  return out;
}

std::string widths_of(const LayerPrecision& p) {
  if (p.is_per_sample()) return fmt::format("per-sample/{}", operand_bits(p.weight_bits()));
  return fmt::format("{}/{}/{}", operand_bits(p.act_bits()), operand_bits(p.weight_bits()), operand_bits(p.grad_bits()));
}

const CostColumn* column_named(const std::vector<CostColumn>& columns, const std::string& name) {
  auto it = std::find_if(columns.begin(), columns.end(), [&](const CostColumn& c) { return c.name == name; });
  return it == columns.end() ? nullptr : &*it;
}

}  // namespace

std::string format_count(int64_t n) {
  const std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out = n < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string format_cost_comparison(const std::vector<CostColumn>& columns) {
  std::string out = fmt::format("  {:<22}", "");
  for (const auto& c : columns) out += fmt::format("{:>16}", c.name);
  out += "\n";
  auto row = [&](const char* label, auto value_of) {
    out += fmt::format("  {:<22}", label);
    for (const auto& c : columns) out += fmt::format("{:>16}", value_of(c.totals));
    out += "\n";
  };
  row("cp (vs FP32)", [](const CostTotals& t) { return percent(t.cp()); });
  row("cp, blocks only", [](const CostTotals& t) { return percent(t.cp_blocks()); });
  row("paper MACs", [](const CostTotals& t) { return scientific(t.paper_macs()); });
  row("paper MACs, blocks only", [](const CostTotals& t) { return scientific(t.paper_macs_blocks()); });
  for (Pass pass : kPasses) {
    const std::string label = std::string("bit-MACs ") + pass_name(pass);
    row(label.c_str(), [pass](const CostTotals& t) { return scientific(t.passes[static_cast<int>(pass)].bit_macs); });
  }
  row("bit-MACs total", [](const CostTotals& t) { return scientific(t.total().bit_macs); });
  row("energy (J)", [](const CostTotals& t) { return general(t.total().energy_j); });
  row("latency (s)", [](const CostTotals& t) { return general(t.total().latency_s); });
  if (const CostColumn* fp32 = column_named(columns, "fp32")) {
    const PassCost base = fp32->totals.total();
    row("energy vs fp32", [&](const CostTotals& t) { return percent(100.0 * t.total().energy_j / base.energy_j); });
    row("latency vs fp32", [&](const CostTotals& t) { return percent(100.0 * t.total().latency_s / base.latency_s); });
  }
  return out;
}

std::vector<CostColumn> run_comparison(const CostMeter& meter) {
  std::vector<CostColumn> columns = {{"this run", summarize(meter.ledger().run, meter.profile())}};
  for (const auto& name : meter.reference_names())
    columns.push_back({name, summarize(meter.reference(name).run, meter.profile())});
  return columns;
}

std::string format_cost_line(const CostMeter& meter) {
  const std::vector<CostColumn> columns = run_comparison(meter);
  const CostTotals& run = columns.front().totals;
  std::string line = fmt::format("cost so far: cp {}, {} bit-MACs, {} J, {} s", percent(run.cp()),
                                 scientific(run.total().bit_macs), general(run.total().energy_j),
                                 general(run.total().latency_s));
  for (size_t i = 1; i < columns.size(); ++i)
    line += fmt::format("{}{} {} J, {} s", i == 1 ? " (" : "; ", columns[i].name,
                        general(columns[i].totals.total().energy_j), general(columns[i].totals.total().latency_s));
  return line + (columns.size() > 1 ? ")" : "");
}

std::vector<std::string> cost_metric_columns(const std::vector<std::string>& reference_names) {
  std::vector<std::string> columns = {"cp", "bit_macs", "energy_j", "latency_s"};
  for (const auto& r : reference_names)
    for (const char* field : {"_bit_macs", "_energy_j", "_latency_s"}) columns.push_back(r + field);
  return columns;
}

nlohmann::json cost_metrics_record(const CostMeter& meter) {
  const std::vector<CostColumn> columns = run_comparison(meter);
  const CostTotals& run = columns.front().totals;
  nlohmann::json record = {{"cp", run.cp()},
                           {"bit_macs", run.total().bit_macs},
                           {"energy_j", run.total().energy_j},
                           {"latency_s", run.total().latency_s}};
  nlohmann::json nested = {{"run", to_json(run)}};
  for (size_t i = 1; i < columns.size(); ++i) {
    const std::string& name = columns[i].name;
    const PassCost total = columns[i].totals.total();
    record[name + "_bit_macs"] = total.bit_macs;
    record[name + "_energy_j"] = total.energy_j;
    record[name + "_latency_s"] = total.latency_s;
    nested[name] = to_json(columns[i].totals);
  }
  record["cost"] = nested;
  return record;
}

nlohmann::json cost_summary_json(const CostMeter& meter) {
  const ModelProfile& profile = meter.profile();
  nlohmann::json references = nlohmann::json::object();
  for (const auto& name : meter.reference_names())
    references[name] = to_json(summarize(meter.reference(name).run, profile));
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < profile.layers().size(); ++i) {
    const LayerProfile& l = profile.layers()[i];
    const LayerCost& c = meter.ledger().run.layers[i];
    nlohmann::json entry = {{"name", l.name},
                            {"kind", to_string(l.kind)},
                            {"role", to_string(l.role)},
                            {"macs_per_sample", l.macs_per_sample},
                            {"paper_bit_macs", c.paper_bit_macs}};
    for (Pass pass : kPasses) entry[pass_name(pass)] = to_json(c.passes[static_cast<int>(pass)]);
    layers.push_back(entry);
  }
  return {{"hardware", {{"name", meter.hardware().name}, {"file", meter.hardware().source}}},
          {"conventions",
           {{"executed", "passes, energy and latency count what ran: the stem's error backward (the gradient of "
                         "the input images) is never computed and costs nothing; evaluation is not counted"},
            {"cp", "every layer and all three passes, the stem's error backward included (the paper's convention), "
                   "over 3 x 32 x 32 bit-MACs per FP32 MAC"},
            {"paper_macs", "cp x 3 x forward MACs x samples trained"},
            {"blocks", "the same counting the block layers only (not the stem, not the classifier)"}}},
          {"run", to_json(summarize(meter.ledger().run, profile))},
          {"references", references},
          {"layers", layers}};
}

nlohmann::json cost_since_json(const CostMeter& meter, const CostPeriod& since) {
  return to_json(difference(summarize(meter.ledger().run, meter.profile()), summarize(since, meter.profile())));
}

std::string format_layer_table(const ModelProfile& profile, const PrecisionPlan& plan,
                               const std::vector<std::pair<std::string, CostPeriod>>& steps) {
  size_t name_width = 5;
  for (const auto& l : profile.layers()) name_width = std::max(name_width, l.name.size());
  std::string out = fmt::format("{:<{}}  {:<6} {:>11} {:>10} {:>12} {:>9} {:>11} {:>11} {:>11} {:>10} {:>10}",
                                "layer", name_width, "kind", "weights", "out CxP", "MACs/sample", "a/w/g",
                                "fw bit-MACs", "eb bit-MACs", "gc bit-MACs", "energy J", "latency s");
  for (size_t s = 1; s < steps.size(); ++s) out += fmt::format(" {:>10}", steps[s].first + " J");
  out += "\n";
  for (size_t i = 0; i < profile.layers().size(); ++i) {
    const LayerProfile& l = profile.layers()[i];
    const LayerCost& c = steps.front().second.layers[i];
    const PassCost total = c.total();
    out += fmt::format("{:<{}}  {:<6} {:>11} {:>10} {:>12} {:>9}", l.name, name_width, to_string(l.kind),
                       joined(l.weight_shape), fmt::format("{}x{}", l.output_channels, l.output_positions),
                       format_count(l.macs_per_sample), widths_of(plan.for_layer(l.name)));
    for (Pass pass : kPasses) {
      const bool ran = pass != Pass::ErrorBackward || l.error_backward_runs;
      out += fmt::format(" {:>11}", ran ? fmt::format("{:.3e}", c.passes[static_cast<int>(pass)].bit_macs) : "not run");
    }
    out += fmt::format(" {:>10.3e} {:>10.3e}", total.energy_j, total.latency_s);
    for (size_t s = 1; s < steps.size(); ++s) out += fmt::format(" {:>10.3e}", steps[s].second.layers[i].total().energy_j);
    out += "\n";
  }
  return out;
}

}  // namespace fractrain
