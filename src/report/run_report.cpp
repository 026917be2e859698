#include "fractrain/report/run_report.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "fractrain/util/error.h"
#include "fractrain/util/gnuplot.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;

std::vector<nlohmann::json> read_records(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("no " + path + ": give the output.dir of a fractrain run");
  std::vector<nlohmann::json> rows;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) throw Error(path + " line " + std::to_string(n) + " is not JSON: the file is damaged");
    rows.push_back(std::move(parsed));
  }
  return rows;
}

// The evaluation records to show: at or just after each asked epoch, or the first, middle and last.
std::vector<nlohmann::json> pick_records(const std::vector<nlohmann::json>& gated, const std::vector<double>& epochs) {
  std::vector<nlohmann::json> picked;
  if (epochs.empty()) {
    for (size_t i : {size_t{0}, gated.size() / 2, gated.size() - 1})
      if (picked.empty() || picked.back() != gated[i]) picked.push_back(gated[i]);
    return picked;
  }
  for (double e : epochs) {
    auto it = std::find_if(gated.begin(), gated.end(),
                           [&](const nlohmann::json& r) { return r["epoch"].get<double>() >= e - 1e-9; });
    if (it == gated.end())
      throw Error(fmt::format("the run has no evaluation at or after epoch {} (its last is at epoch {:.3g})", e,
                              gated.back()["epoch"].get<double>()));
    picked.push_back(*it);
  }
  return picked;
}

// Module paths in execution order: digit runs compare as numbers ("blocks.2" before "blocks.10").
bool execution_order_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i_end = i, j_end = j;
      while (i_end < a.size() && std::isdigit(static_cast<unsigned char>(a[i_end]))) ++i_end;
      while (j_end < b.size() && std::isdigit(static_cast<unsigned char>(b[j_end]))) ++j_end;
      const unsigned long long x = std::stoull(a.substr(i, i_end - i)), y = std::stoull(b.substr(j, j_end - j));
      if (x != y) return x < y;
      i = i_end;
      j = j_end;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

Heatmap heatmap_of(const nlohmann::json& record) {
  Heatmap map;
  map.title = fmt::format("epoch {:.3g} (cp {:.2f}%)", record["epoch"].get<double>(),
                          record["window_cp_blocks"].get<double>());
  map.columns = record["gate_options"].get<std::vector<std::string>>();
  // The JSON object keeps its keys in string order, which puts "blocks.10" before "blocks.2" (MobileNetV2).
  for (const auto& item : record["gate_selection"].items()) map.rows.push_back(item.key());
  std::sort(map.rows.begin(), map.rows.end(), execution_order_less);
  for (const auto& block : map.rows) map.values.push_back(record["gate_selection"][block].get<std::vector<double>>());
  return map;
}

// Rows after the header of a CSV file (0 when it is missing).
size_t data_rows(const std::string& csv) {
  std::ifstream in(csv);
  std::string line;
  size_t rows = 0;
  while (std::getline(in, line))
    if (!line.empty()) ++rows;
  return rows > 0 ? rows - 1 : 0;
}

std::vector<std::string> both_formats(const fs::path& dir, const std::string& stem) {
  return {(dir / (stem + ".png")).string(), (dir / (stem + ".svg")).string()};
}

}  // namespace

void plot_training_curves(const std::string& metrics_csv, const std::string& title, const std::string& output_path,
                          bool against_cost) {
  const std::string x = against_cost ? "bit_macs" : "step";
  PlotSpec spec;
  spec.title = title;
  spec.x_label = against_cost ? "bit-MACs spent in training" : "step";
  spec.y_label = "accuracy";
  spec.y2_label = "loss";
  spec.series = {{"train accuracy", metrics_csv, x, "train_accuracy", false},
                 {"test accuracy", metrics_csv, x, "test_accuracy", false},
                 {"train loss", metrics_csv, x, "train_loss", true},
                 {"test loss", metrics_csv, x, "test_loss", true}};
  plot_lines(spec, output_path);
}

std::vector<std::string> write_run_report(const std::string& run_dir, const RunReportOptions& options) {
  if (!fs::is_directory(run_dir)) throw Error("report: '" + run_dir + "' is not a directory (give a run's output.dir)");
  const std::vector<nlohmann::json> records = read_records((fs::path(run_dir) / "metrics.jsonl").string());
  if (records.empty()) throw Error("report: " + run_dir + "/metrics.jsonl has no evaluation yet");
  if (!gnuplot_available()) throw Error("report: gnuplot is not installed (apt-get install gnuplot-nox)");
  const fs::path out = options.output_dir.empty() ? fs::path(run_dir) / "report" : fs::path(options.output_dir);
  fs::create_directories(out);
  std::vector<std::string> written;
  const std::string name =
      options.name.empty() ? fs::path(run_dir).lexically_normal().filename().string() : options.name;
  const std::string title = name + ": " +
                            records.back().value("precision", std::string());
  for (bool against_cost : {false, true}) {
    for (const auto& path : both_formats(out, against_cost ? "curves_vs_cost" : "training_curves")) {
      plot_training_curves((fs::path(run_dir) / "metrics.csv").string(), title, path, against_cost);
      written.push_back(path);
    }
  }

  const std::string indicator = (fs::path(run_dir) / "indicator.csv").string();
  if (data_rows(indicator) > 0) {
    // Why the turning points came when they did: a turning point is a test whose largest difference is <= eps.
    PlotSpec spec;
    spec.title = title + ": loss-plateau indicator";
    spec.x_label = "step";
    spec.y_label = "largest d_j of each test, and eps (log scale)";
    spec.y2_label = "window mean training loss";
    spec.log_y = true;
    spec.series = {{"largest d_j of each test", indicator, "step", "max_d", false, "points"},
                   {"eps (a test at or below it is a turning point)", indicator, "step", "eps", false, "steps"},
                   {"window mean loss", indicator, "step", "window_loss", true, "lines"}};
    for (const auto& path : both_formats(out, "indicator")) {
      plot_lines(spec, path);
      written.push_back(path);
    }
  }

  std::vector<nlohmann::json> gated;
  for (const auto& r : records)
    if (r.contains("gate_selection") && !r["gate_selection"].empty()) gated.push_back(r);
  if (gated.empty()) return written;  // not a DFQ run

  std::vector<Heatmap> maps;
  for (const auto& r : pick_records(gated, options.epochs)) maps.push_back(heatmap_of(r));
  for (const auto& path : both_formats(out, "bit_allocation")) {
    plot_heatmaps("fraction of samples choosing each option (act/grad bits), per gated block", maps, path);
    written.push_back(path);
  }
  const std::string trace = (fs::path(run_dir) / "cp_trace.csv").string();
  if (data_rows(trace) == 0) {
    std::printf("note: %s has no points yet (one every train.log_every steps): no cp_trace plot\n", trace.c_str());
  } else {
    PlotSpec spec;
    spec.title = title;
    spec.x_label = "step";
    spec.y_label = "cp (% of FP32)";
    spec.series = {{"cp, gated blocks", trace, "step", "cp_blocks", false},
                   {"cp, whole network", trace, "step", "cp", false},
                   {"target", trace, "step", "target_cp", false}};
    for (const auto& path : both_formats(out, "cp_trace")) {
      plot_lines(spec, path);
      written.push_back(path);
    }
  }
  return written;
}

}  // namespace fractrain
