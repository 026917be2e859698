#include "fractrain/sweep/sweep_results.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "fractrain/report/run_report.h"
#include "fractrain/precision/precision_controller.h"
#include "fractrain/train/run_summary.h"
#include "fractrain/util/atomic_file.h"
#include "fractrain/util/error.h"
#include "fractrain/util/gnuplot.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? kNaN : sum / static_cast<double>(v.size());
}

// Sample standard deviation (n - 1); 0 for a single seed.
double sd(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double sum = 0;
  for (double x : v) sum += (x - m) * (x - m);
  return std::sqrt(sum / static_cast<double>(v.size() - 1));
}

double saving(double ours, double theirs) { return theirs > 0 ? 1.0 - ours / theirs : kNaN; }

const MethodResult* find(const std::vector<MethodResult>& rows, const std::string& setting, const std::string& method) {
  for (const auto& r : rows)
    if (r.setting == setting && r.method == method) return &r;
  return nullptr;
}

std::string csv_number(double x) { return std::isnan(x) ? "" : fmt::format("{:.6g}", x); }
std::string percent(double fraction, int digits = 1) {
  return std::isnan(fraction) ? "-" : fmt::format("{:.{}f}%", 100.0 * fraction, digits);
}
std::string signed_points(double fraction) {
  return std::isnan(fraction) ? "-" : fmt::format("{:+.2f}", 100.0 * fraction);
}

// The baseline's run of the same setting and seed, or none.
const RunResult* paired_baseline(const SweepSpec& spec, const std::vector<RunResult>& runs, const RunResult& r) {
  if (spec.baseline.empty()) return nullptr;
  for (const auto& b : runs)
    if (b.setting == r.setting && b.method == spec.baseline && b.seed == r.seed) return &b;
  return nullptr;
}

// "0.13 0.41 0.62", or "-" for a run without turning points.
std::string fraction_list(const std::vector<double>& fractions, const char* separator) {
  if (fractions.empty()) return "-";
  std::string out;
  for (size_t i = 0; i < fractions.size(); ++i) out += fmt::format("{}{:.3f}", i ? separator : "", fractions[i]);
  return out;
}

std::string runs_csv(const SweepSpec& spec, const std::vector<RunResult>& runs) {
  std::string out =
      "setting,method,seed,precision,final_test_accuracy,best_test_accuracy,accuracy_delta_vs_baseline_same_seed,"
      "cp_percent,bit_macs,energy_j,latency_s,epochs,train_seconds,turning_point_fractions\n";
  for (const auto& r : runs) {
    const RunResult* base = paired_baseline(spec, runs, r);
    out += fmt::format("{},{},{},\"{}\",{},{},{},{},{},{},{},{},{},{}\n", r.setting, r.method, r.seed, r.precision,
                       csv_number(r.final_accuracy), csv_number(r.best_accuracy),
                       csv_number(base ? r.final_accuracy - base->final_accuracy : kNaN), csv_number(r.cp_percent),
                       csv_number(r.bit_macs), csv_number(r.energy_j), csv_number(r.latency_s), csv_number(r.epochs),
                       csv_number(r.train_seconds),
                       r.turning_point_fractions.empty() ? "" : fraction_list(r.turning_point_fractions, ";"));
  }
  return out;
}

std::string results_csv(const std::vector<MethodResult>& rows) {
  std::string out =
      "setting,method,seeds,accuracy_mean,accuracy_sd,best_accuracy_mean,cp_percent,bit_macs,energy_j,latency_s,"
      "bit_macs_saving_vs_baseline,energy_saving_vs_baseline,latency_saving_vs_baseline,accuracy_delta_vs_baseline,"
      "bit_macs_saving_vs_reference,accuracy_delta_vs_reference,paired_delta_sd_vs_baseline,train_seconds\n";
  for (const auto& r : rows)
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", r.setting, r.method, r.seeds,
                       csv_number(r.accuracy_mean), csv_number(r.accuracy_sd), csv_number(r.best_accuracy_mean),
                       csv_number(r.cp_percent), csv_number(r.bit_macs), csv_number(r.energy_j),
                       csv_number(r.latency_s), csv_number(r.bit_macs_saving_vs_baseline),
                       csv_number(r.energy_saving_vs_baseline), csv_number(r.latency_saving_vs_baseline),
                       csv_number(r.accuracy_delta_vs_baseline), csv_number(r.bit_macs_saving_vs_reference),
                       csv_number(r.accuracy_delta_vs_reference), csv_number(r.paired_delta_sd_vs_baseline),
                       csv_number(r.train_seconds));
  return out;
}

// accuracy_vs_cost: one point per method (mean over seeds, error bar = sd), cost as cp on a log axis since
// FP32 (100%) and the low-precision methods (a few %) differ by orders of magnitude. Each method is its own
// data block with its own colour and point type, named in the key: text labels next to the points collide
// when two methods cost about the same.
void plot_accuracy_vs_cost(const std::vector<MethodResult>& rows, const std::string& setting, const fs::path& out,
                           SweepReportFiles& files) {
  const fs::path data = out / ("accuracy_vs_cost_" + setting + ".dat");
  std::ofstream d(data);
  std::vector<std::string> methods;
  for (const auto& r : rows) {
    if (r.setting != setting) continue;
    d << (methods.empty() ? "" : "\n\n")
      << fmt::format("{} {} {} \"{}\"\n", r.cp_percent, 100.0 * r.accuracy_mean, 100.0 * r.accuracy_sd, r.method);
    methods.push_back(r.method);
  }
  d.close();
  if (methods.empty()) return;
  static constexpr int kPointTypes[] = {7, 5, 9, 11, 13, 15, 4, 6, 8, 10, 12, 14};
  for (const char* ext : {".png", ".svg"}) {
    const std::string path = (out / ("accuracy_vs_cost_" + setting + ext)).string();
    std::string script = gnuplot_terminal(path, 900, 600);
    script += "set title " + gnuplot_quoted("test accuracy vs training cost (" + setting + "; mean and sd over seeds)") + "\n";
    script += "set xlabel \"training cost: cp, % of FP32 bit-MACs (log scale)\"\nset ylabel \"final test accuracy (%)\"\n";
    script += "set logscale x\nset grid\nset key outside right top\nset offsets graph 0.08, graph 0.15, graph 0.1, graph 0.1\n";
    script += "plot ";
    for (size_t i = 0; i < methods.size(); ++i)
      script += fmt::format("{}{} index {} using 1:2:3 with yerrorbars pt {} ps 1.6 lc rgb {} title {}", i ? ", " : "",
                            i ? "''" : gnuplot_quoted(data.string()), i, kPointTypes[i % std::size(kPointTypes)],
                            gnuplot_quoted(series_colour(i)), gnuplot_quoted(methods[i]));
    script += "\n";
    run_gnuplot(script, path);
    files.written.push_back(path);
  }
}

// curves_vs_cost: test accuracy against the cumulative bit-MACs spent, first seed of every method.
void plot_curves_vs_cost(const SweepSpec& spec, const std::string& setting, const fs::path& out,
                         SweepReportFiles& files) {
  PlotSpec plot;
  plot.title = "test accuracy vs bit-MACs spent (" + setting + ", seed " + std::to_string(spec.seeds.front()) + ")";
  plot.x_label = "bit-MACs spent in training (log scale)";
  plot.log_x = true;  // FP32 spends ~16x more than FW-8/BW-8: on a linear axis the quantized runs overlap
  plot.y_label = "test accuracy";
  for (const auto& run : spec.runs) {
    if (run.setting != setting || run.method == "pretrain" || run.seed != spec.seeds.front()) continue;
    const std::string csv = (fs::path(run.config.output.dir) / "metrics.csv").string();
    if (fs::exists(csv)) plot.series.push_back({run.method, csv, "bit_macs", "test_accuracy", false});
  }
  if (plot.series.empty()) return;
  for (const char* ext : {".png", ".svg"}) {
    const std::string path = (out / ("curves_vs_cost_" + setting + ext)).string();
    plot_lines(plot, path);
    files.written.push_back(path);
  }
}

}  // namespace

std::vector<RunResult> collect_results(const SweepSpec& spec) {
  std::vector<RunResult> results;
  for (const auto& run : spec.runs) {
    if (run.method == "pretrain") continue;
    const std::string path = run_summary_path(run.config.output.dir);
    if (!fs::exists(path)) continue;
    const RunSummary s = read_run_summary(path);  // names the file and the key when it is damaged or old
    if (!s.finished()) continue;
    const CostHeadline cost = s.run_cost();
    std::vector<double> turning_points;
    for (const auto& t : s.turning_points)
      turning_points.push_back(static_cast<double>(turning_point_from_json(t).step) /
                               static_cast<double>(std::max<int64_t>(1, s.total_steps)));
    results.push_back(RunResult{run.setting, run.method, s.precision, run.seed, s.final_test_accuracy,
                                s.best_test_accuracy, cost.cp_percent, cost.bit_macs, cost.energy_j, cost.latency_s,
                                s.train_seconds, s.epochs, run.config.output.dir, std::move(turning_points)});
  }
  return results;
}

std::vector<MethodResult> aggregate_results(const SweepSpec& spec, const std::vector<RunResult>& runs) {
  std::vector<MethodResult> rows;
  for (const auto& setting : spec.settings) {
    for (const auto& method : spec.methods) {
      std::vector<double> acc, best, cp, macs, energy, latency, seconds, paired;
      for (const auto& r : runs) {
        if (r.setting != setting || r.method != method) continue;
        if (const RunResult* base = paired_baseline(spec, runs, r)) paired.push_back(r.final_accuracy - base->final_accuracy);
        seconds.push_back(r.train_seconds);
        acc.push_back(r.final_accuracy);
        best.push_back(r.best_accuracy);
        cp.push_back(r.cp_percent);
        macs.push_back(r.bit_macs);
        energy.push_back(r.energy_j);
        latency.push_back(r.latency_s);
      }
      if (acc.empty()) continue;
      MethodResult m;
      m.setting = setting;
      m.method = method;
      m.seeds = static_cast<int>(acc.size());
      m.accuracy_mean = mean(acc);
      m.accuracy_sd = sd(acc);
      m.best_accuracy_mean = mean(best);
      m.cp_percent = mean(cp);
      m.bit_macs = mean(macs);
      m.energy_j = mean(energy);
      m.latency_s = mean(latency);
      m.train_seconds = mean(seconds);
      m.paired_delta_sd_vs_baseline = paired.empty() ? kNaN : sd(paired);
      rows.push_back(m);
    }
  }
  for (auto& m : rows) {
    const MethodResult* base = spec.baseline.empty() ? nullptr : find(rows, m.setting, spec.baseline);
    const MethodResult* ref = spec.reference.empty() ? nullptr : find(rows, m.setting, spec.reference);
    m.bit_macs_saving_vs_baseline = base ? saving(m.bit_macs, base->bit_macs) : kNaN;
    m.energy_saving_vs_baseline = base ? saving(m.energy_j, base->energy_j) : kNaN;
    m.latency_saving_vs_baseline = base ? saving(m.latency_s, base->latency_s) : kNaN;
    m.accuracy_delta_vs_baseline = base ? m.accuracy_mean - base->accuracy_mean : kNaN;
    m.bit_macs_saving_vs_reference = ref ? saving(m.bit_macs, ref->bit_macs) : kNaN;
    m.accuracy_delta_vs_reference = ref ? m.accuracy_mean - ref->accuracy_mean : kNaN;
  }
  return rows;
}

std::string results_markdown(const SweepSpec& spec, const std::vector<MethodResult>& rows) {
  const std::string base = spec.baseline.empty() ? "baseline" : spec.baseline;
  const std::string ref = spec.reference.empty() ? "reference" : spec.reference;
  std::string out = fmt::format(
      "| setting | method | seeds | test accuracy (mean ± sd) | Δacc vs {0} (pp, ± paired sd) | cp | bit-MACs | "
      "saving vs {0} | energy (J) | saving | latency (s) | saving | saving vs {1} | training time |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
      base, ref);
  for (const auto& r : rows) {
    std::string delta = signed_points(r.accuracy_delta_vs_baseline);
    if (!std::isnan(r.accuracy_delta_vs_baseline) && !std::isnan(r.paired_delta_sd_vs_baseline) &&
        r.method != spec.baseline)
      delta += fmt::format(" ± {:.2f}", 100.0 * r.paired_delta_sd_vs_baseline);
    out += fmt::format(
        "| {} | {} | {} | {:.2f} ± {:.2f} % | {} | {:.2f}% | {:.3e} | {} | {:.1f} | {} | {:.1f} | {} | {} | {:.1f} min |\n",
        r.setting, r.method, r.seeds, 100.0 * r.accuracy_mean, 100.0 * r.accuracy_sd, delta, r.cp_percent, r.bit_macs,
        percent(r.bit_macs_saving_vs_baseline), r.energy_j, percent(r.energy_saving_vs_baseline), r.latency_s,
        percent(r.latency_saving_vs_baseline), percent(r.bit_macs_saving_vs_reference), r.train_seconds / 60.0);
  }
  return out;
}

std::string runs_markdown(const SweepSpec& spec, const std::vector<RunResult>& runs) {
  const std::string base = spec.baseline.empty() ? "baseline" : spec.baseline;
  std::string out = fmt::format(
      "| setting | method | seed | test accuracy | Δacc vs {0}, same seed (pp) | cp | bit-MACs | training time | "
      "turning points (fraction of the run) |\n|---|---|---|---|---|---|---|---|---|\n",
      base);
  for (const auto& r : runs) {
    const RunResult* b = paired_baseline(spec, runs, r);
    out += fmt::format("| {} | {} | {} | {:.2f}% | {} | {:.2f}% | {:.3e} | {:.1f} min | {} |\n", r.setting, r.method,
                       r.seed, 100.0 * r.final_accuracy, signed_points(b ? r.final_accuracy - b->final_accuracy : kNaN),
                       r.cp_percent, r.bit_macs, r.train_seconds / 60.0, fraction_list(r.turning_point_fractions, ", "));
  }
  return out;
}

SweepReportFiles write_sweep_report(const SweepSpec& spec, const std::string& output_dir) {
  const fs::path out(output_dir.empty() ? spec.output : output_dir);
  fs::create_directories(out);
  const auto runs = collect_results(spec);
  const auto rows = aggregate_results(spec, runs);
  SweepReportFiles files;
  files.results_table = results_markdown(spec, rows);
  auto write = [&](const std::string& name, const std::string& text) {
    write_file_atomically((out / name).string(), text);
    files.written.push_back((out / name).string());
  };
  write("runs.csv", runs_csv(spec, runs));
  write("results.csv", results_csv(rows));
  write("results.md", "# Sweep results: " + spec.source + "\n\nFinal test accuracy; cost of the whole training "
                      "run (bit-weighted MACs, cp = % of FP32 bit-MACs, energy and latency on the accelerator model). "
                      "Savings: 1 - this / the named method's, same setting.\n\n" + files.results_table +
                      "\n## Runs\n\nTraining time: the measured wall-clock of the training steps (runs sharing the "
                      "machine slow each other).\n\n" + runs_markdown(spec, runs));
  if (rows.empty() || !gnuplot_available()) return files;
  for (const auto& setting : spec.settings) {
    if (std::none_of(rows.begin(), rows.end(), [&](const MethodResult& r) { return r.setting == setting; })) continue;
    plot_accuracy_vs_cost(rows, setting, out, files);
    plot_curves_vs_cost(spec, setting, out, files);
  }
  for (const auto& run : runs) {
    RunReportOptions options;
    options.name = run_label(run.setting, run.method, run.seed);  // not just "seed-1"
    if (!output_dir.empty()) options.output_dir = (out / options.name).string();
    write_run_report(run.dir, options);
    files.run_report_dirs.push_back(options.output_dir.empty() ? (fs::path(run.dir) / "report").string()
                                                               : options.output_dir);
  }
  return files;
}

}  // namespace fractrain
