#pragma once
// The results of a sweep: one row per run, one aggregated row per (setting, method) with accuracy over seeds
// and cost savings against the spec's baseline and reference methods; written as CSV and Markdown, and drawn
// as accuracy-versus-cost charts (the paper's comparison figure) and test-accuracy-versus-cost curves.
#include <string>
#include <vector>

#include "fractrain/sweep/sweep_spec.h"

namespace fractrain {

struct RunResult {
  std::string setting, method, precision;
  uint64_t seed = 0;
  double final_accuracy = 0, best_accuracy = 0;  // fractions
  double cp_percent = 0, bit_macs = 0, energy_j = 0, latency_s = 0, train_seconds = 0, epochs = 0;
  std::string dir;  // the run's output directory
  // When the run's stages began, as fractions of its steps (PFQ's and FracTrain's turning points).
  std::vector<double> turning_point_fractions{};
};

struct MethodResult {
  std::string setting, method;
  int seeds = 0;
  double accuracy_mean = 0, accuracy_sd = 0;  // final test accuracy (fractions); sd over seeds (0 for one)
  double best_accuracy_mean = 0;
  double cp_percent = 0, bit_macs = 0, energy_j = 0, latency_s = 0;  // means over seeds
  // Against the baseline / reference method of the same setting (NaN when absent): 1 - this / theirs, and
  // the accuracy difference in fractions.
  double bit_macs_saving_vs_baseline = 0, energy_saving_vs_baseline = 0, latency_saving_vs_baseline = 0;
  double accuracy_delta_vs_baseline = 0;
  // The same difference taken seed by seed (this seed minus the baseline's run with the same seed): their sd
  // over the seeds both have (0 for one, NaN for none). Seeds share initial weights and data order, so the paired
  // spread is the fair yardstick for a difference between methods.
  double paired_delta_sd_vs_baseline = 0;
  double train_seconds = 0;  // mean measured training time (wall-clock of the steps)
  double bit_macs_saving_vs_reference = 0, accuracy_delta_vs_reference = 0;
};

// Reads summary.json of every finished run (pretraining runs excluded); unfinished runs are left out.
std::vector<RunResult> collect_results(const SweepSpec& spec);
std::vector<MethodResult> aggregate_results(const SweepSpec& spec, const std::vector<RunResult>& runs);

struct SweepReportFiles {
  std::string results_table;  // results_markdown of the finished runs, as written into results.md
  std::vector<std::string> written;
  // Each finished run's own plots (training curves; bit allocation heatmap and cp trace for DFQ and
  // FracTrain runs), one directory per run: RUN_DIR/report, or OUTPUT/SETTING/METHOD/seed-S with output_dir.
  std::vector<std::string> run_report_dirs;
};
// Writes OUTPUT/runs.csv, OUTPUT/results.csv, OUTPUT/results.md and, when gnuplot is installed,
// OUTPUT/accuracy_vs_cost_SETTING.{png,svg}, OUTPUT/curves_vs_cost_SETTING.{png,svg} and every finished
// run's report (see run_report_dirs). OUTPUT is the spec's output directory unless `output_dir` names another.
SweepReportFiles write_sweep_report(const SweepSpec& spec, const std::string& output_dir = "");

// The Markdown table alone (also printed by `fractrain sweep`).
std::string results_markdown(const SweepSpec& spec, const std::vector<MethodResult>& rows);

// One row per run: its accuracy, the paired difference to the baseline's run with the same seed, cost, the
// measured training time and when its turning points fired (fractions of the run). In results.md too.
std::string runs_markdown(const SweepSpec& spec, const std::vector<RunResult>& runs);

}  // namespace fractrain
