#pragma once
// `fractrain report RUN_DIR`: the plots of a run directory, drawn from what the run wrote (metrics.csv/jsonl,
// cp_trace.csv): training curves against steps and against bit-MACs spent, and for DFQ/FracTrain runs the bit-allocation heatmap (gated blocks x
// options at chosen epochs, like the paper's figure) and cp against the iteration; for auto PFQ and FracTrain the
// loss indicator's tests against eps (indicator.csv). PNG and SVG of each.
#include <string>
#include <vector>

namespace fractrain {

struct RunReportOptions {
  // Epochs whose selection frequencies the heatmap shows (the evaluation at or just after each); empty = the
  // first, middle and last evaluations.
  std::vector<double> epochs;
  std::string output_dir;  // empty = RUN_DIR/report
  std::string name;        // names the run in plot titles; empty = RUN_DIR's last component
};

// Returns the files written. Throws fractrain::Error when RUN_DIR is not a run directory or has no evaluations.
std::vector<std::string> write_run_report(const std::string& run_dir, const RunReportOptions& options);

// Train/test accuracy (left axis) and losses (right axis) against the step, or with `against_cost` against the
// bit-weighted MACs spent so far (the x axis on which methods of different precision compare), from a
// metrics.csv.
void plot_training_curves(const std::string& metrics_csv, const std::string& title, const std::string& output_path,
                          bool against_cost = false);

}  // namespace fractrain
