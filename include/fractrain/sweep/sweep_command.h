#pragma once
// `fractrain sweep SPEC.toml`: run a comparison's missing runs, then write its results table and plots.
#include <string>
#include <vector>

namespace fractrain {

struct SweepCommand {
  std::string spec_path;
  std::vector<std::string> overrides;  // --set, applied to every run after the spec's own
  int jobs = 1;
  bool report_only = false;  // tables and plots from the finished runs; start nothing
  bool list = false;         // print each run's state and directory; start nothing
};

// OUTPUT/sweep_spec.toml: the copy of the spec a sweep keeps beside its results.
std::string sweep_spec_copy_path(const std::string& output_dir);
bool is_sweep_output(const std::string& dir);
// `fractrain report SWEEP_OUTPUT`: the results table and plots again from the finished runs (relative paths in
// the spec resolve against the working directory, as when the sweep ran). Returns the files written.
std::vector<std::string> redraw_sweep_report(const std::string& dir, const std::string& output_dir = "");

// Returns the process exit status: 0 when every run finished, 1 when some failed or the sweep was
// interrupted (the table then covers the finished runs).
int run_sweep_command(const SweepCommand& command);

}  // namespace fractrain
