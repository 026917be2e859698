#pragma once
// Evaluation metrics of a run, one record per evaluation, as JSON lines (metrics.jsonl) and CSV (metrics.csv).
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace fractrain {

class MetricsLog {
 public:
  // `columns` fixes the CSV header. With `keep_up_to_step` >= 0 (a resumed run), records after that step are
  // dropped first, so the files end up as an uninterrupted run would have written them.
  MetricsLog(std::string dir, std::vector<std::string> columns, int64_t keep_up_to_step = -1);
  // Appends one record (must contain "step" and every column; extra keys go to the JSON line only).
  void append(const nlohmann::json& record);
  std::vector<nlohmann::json> records() const;

  std::string jsonl_path() const { return dir_ + "/metrics.jsonl"; }
  std::string csv_path() const { return dir_ + "/metrics.csv"; }

 private:
  void rewrite(const std::vector<nlohmann::json>& records);
  std::string csv_row(const nlohmann::json& record) const;

  std::string dir_;
  std::vector<std::string> columns_;
};

}  // namespace fractrain
