#include "fractrain/precision/gate_statistics.h"

#include "fractrain/util/error.h"

namespace fractrain {

std::vector<std::vector<double>> GateWindow::fractions() const {
  std::vector<std::vector<double>> out;
  for (const auto& row : counts) {
    std::vector<double> f;
    for (int64_t c : row) f.push_back(samples ? static_cast<double>(c) / static_cast<double>(samples) : 0.0);
    out.push_back(std::move(f));
  }
  return out;
}

nlohmann::json GateWindow::selection_json() const {
  nlohmann::json j = nlohmann::json::object();
  const auto f = fractions();
  for (size_t b = 0; b < blocks.size(); ++b) j[blocks[b]] = f[b];
  return j;
}

GateStatistics::GateStatistics(std::vector<std::string> blocks, size_t options) {
  window_.counts.assign(blocks.size(), std::vector<int64_t>(options, 0));
  window_.blocks = std::move(blocks);
}

void GateStatistics::add_batch(const std::vector<std::vector<int64_t>>& decisions, double cp, double cp_blocks) {
  if (decisions.size() != window_.counts.size())
    throw Error("gate statistics: " + std::to_string(decisions.size()) + " blocks decided, expected " +
                std::to_string(window_.counts.size()));
  const int64_t samples = decisions.empty() ? 0 : static_cast<int64_t>(decisions.front().size());
  std::vector<std::vector<int64_t>> counts;
  for (size_t b = 0; b < decisions.size(); ++b) {
    std::vector<int64_t> row(window_.counts[b].size(), 0);
    for (int64_t k : decisions[b]) {
      if (k < 0 || k >= static_cast<int64_t>(row.size())) throw Error("gate statistics: option index out of range");
      ++row[static_cast<size_t>(k)];
    }
    counts.push_back(std::move(row));
  }
  add_counts(counts, samples, cp, cp_blocks);
}

void GateStatistics::add_counts(const std::vector<std::vector<int64_t>>& counts, int64_t samples, double cp,
                                double cp_blocks) {
  if (counts.size() != window_.counts.size())
    throw Error("gate statistics: " + std::to_string(counts.size()) + " blocks counted, expected " +
                std::to_string(window_.counts.size()));
  for (size_t b = 0; b < counts.size(); ++b) {
    if (counts[b].size() != window_.counts[b].size())
      throw Error("gate statistics: " + std::to_string(counts[b].size()) + " options counted, expected " +
                  std::to_string(window_.counts[b].size()));
    for (size_t k = 0; k < counts[b].size(); ++k) window_.counts[b][k] += counts[b][k];
  }
  window_.samples += samples;
  window_.cp_sum += cp * static_cast<double>(samples);
  window_.cp_blocks_sum += cp_blocks * static_cast<double>(samples);
}

GateWindow GateStatistics::take_window() {
  GateWindow taken = window_;
  for (auto& row : window_.counts) std::fill(row.begin(), row.end(), 0);
  window_.samples = 0;
  window_.cp_sum = window_.cp_blocks_sum = 0;
  return taken;
}

nlohmann::json GateStatistics::state() const {
  return {{"blocks", window_.blocks},
          {"counts", window_.counts},
          {"samples", window_.samples},
          {"cp_sum", window_.cp_sum},
          {"cp_blocks_sum", window_.cp_blocks_sum}};
}

void GateStatistics::restore(const nlohmann::json& state) {
  GateWindow w;
  w.blocks = state.at("blocks").get<std::vector<std::string>>();
  w.counts = state.at("counts").get<std::vector<std::vector<int64_t>>>();
  w.samples = state.at("samples").get<int64_t>();
  w.cp_sum = state.at("cp_sum").get<double>();
  w.cp_blocks_sum = state.at("cp_blocks_sum").get<double>();
  if (w.blocks != window_.blocks || w.counts.size() != window_.counts.size() ||
      (!w.counts.empty() && w.counts.front().size() != window_.counts.front().size()))
    throw Error("the checkpoint's gate statistics are for other blocks or options");
  window_ = std::move(w);
}

}  // namespace fractrain
