#pragma once
// Records of a run (evaluation metrics, one per evaluation; DFQ's cp trace), as JSON lines (NAME.jsonl) and CSV
// (NAME.csv), NAME being "metrics" unless given.
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace fractrain {

class MetricsLog {
 public:
  // `columns` fixes the CSV header. With `keep_up_to_step` >= 0 (a resumed run), records after that step are
  // dropped first, so the files end up as an uninterrupted run would have written them.
  MetricsLog(std::string dir, std::vector<std::string> columns, int64_t keep_up_to_step = -1,
             std::string name = "metrics");
  // Appends one record (must contain "step" and every column; extra keys go to the JSON line only).
  void append(const nlohmann::json& record);
  std::vector<nlohmann::json> records() const;

  std::string jsonl_path() const { return dir_ + "/" + name_ + ".jsonl"; }
  std::string csv_path() const { return dir_ + "/" + name_ + ".csv"; }

 private:
  void rewrite(const std::vector<nlohmann::json>& records);
  std::string csv_row(const nlohmann::json& record) const;

  std::string dir_, name_;
  std::vector<std::string> columns_;
};

}  // namespace fractrain
