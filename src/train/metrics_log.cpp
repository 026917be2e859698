#include "fractrain/train/metrics_log.h"

#include <fstream>
#include <sstream>

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

std::string csv_cell(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

}  // namespace

MetricsLog::MetricsLog(std::string dir, std::vector<std::string> columns, int64_t keep_up_to_step, std::string name)
    : dir_(std::move(dir)), name_(std::move(name)), columns_(std::move(columns)) {
  std::vector<nlohmann::json> kept;
  if (keep_up_to_step >= 0)
    for (const auto& r : records())
      if (r.value("step", int64_t{0}) <= keep_up_to_step) kept.push_back(r);
  rewrite(kept);
}

std::vector<nlohmann::json> MetricsLog::records() const {
  std::vector<nlohmann::json> out;
  std::ifstream in(jsonl_path());
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) out.push_back(std::move(parsed));  // a torn last line (crash) is skipped
  }
  return out;
}

std::string MetricsLog::csv_row(const nlohmann::json& record) const {
  std::string row;
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (i) row += ',';
    row += record.contains(columns_[i]) ? csv_cell(record[columns_[i]]) : "";
  }
  return row;
}

void MetricsLog::rewrite(const std::vector<nlohmann::json>& records) {
  std::ofstream jsonl(jsonl_path(), std::ios::trunc), csv(csv_path(), std::ios::trunc);
  if (!jsonl || !csv) throw Error("cannot write metrics in " + dir_ + ": check that the directory is writable");
  for (size_t i = 0; i < columns_.size(); ++i) csv << (i ? "," : "") << columns_[i];
  csv << '\n';
  for (const auto& r : records) {
    jsonl << r.dump() << '\n';
    csv << csv_row(r) << '\n';
  }
}

void MetricsLog::append(const nlohmann::json& record) {
  std::ofstream jsonl(jsonl_path(), std::ios::app), csv(csv_path(), std::ios::app);
  jsonl << record.dump() << '\n';
  csv << csv_row(record) << '\n';
  if (!jsonl || !csv) throw Error("cannot append metrics in " + dir_ + " (disk full?)");
}

}  // namespace fractrain
