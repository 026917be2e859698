#pragma once
// What DFQ gates chose: per gated block and option, how many samples chose it, and the sample-weighted cp of
// the batches, accumulated over a window (an evaluation window, a log window) and then taken and reset.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace fractrain {

struct GateWindow {
  std::vector<std::string> blocks;
  std::vector<std::vector<int64_t>> counts;  // [block][option]
  int64_t samples = 0;                       // training samples seen (each block decides for each)
  double cp_sum = 0, cp_blocks_sum = 0;      // sample-weighted batch cp (percent)

  double cp() const { return samples ? cp_sum / static_cast<double>(samples) : 0.0; }
  double cp_blocks() const { return samples ? cp_blocks_sum / static_cast<double>(samples) : 0.0; }
  // fractions[block][option] of the samples that chose the option.
  std::vector<std::vector<double>> fractions() const;
  // {"stage1.0": [fractions...], ...}
  nlohmann::json selection_json() const;
};

class GateStatistics {
 public:
  GateStatistics() = default;
  GateStatistics(std::vector<std::string> blocks, size_t options);

  // One training batch: the decision of each block (blocks in order) for each sample, and the batch's cp.
  void add_batch(const std::vector<std::vector<int64_t>>& decisions, double cp, double cp_blocks);
  // The same batch as counts: counts[block][option] of its `samples` samples chose the option.
  void add_counts(const std::vector<std::vector<int64_t>>& counts, int64_t samples, double cp, double cp_blocks);

  const GateWindow& window() const { return window_; }
  // Returns the window and starts a new one.
  GateWindow take_window();

  nlohmann::json state() const;
  void restore(const nlohmann::json& state);  // nlohmann::json::exception or fractrain::Error when it does not fit

 private:
  GateWindow window_;
};

}  // namespace fractrain
