#include "fractrain/sweep/sweep_command.h"

#include <cstdio>
#include <filesystem>
#include <optional>

#include "fractrain/sweep/sweep_results.h"
#include "fractrain/sweep/sweep_runner.h"
#include "fractrain/sweep/sweep_spec.h"
#include "fractrain/util/atomic_file.h"
#include "fractrain/util/directory_lock.h"
#include "fractrain/util/error.h"
#include "fractrain/util/stop_signal.h"
#include "fractrain/util/toml_file.h"

namespace fractrain {
namespace {

// The table and charts, then each run's report directory.
std::vector<std::string> written_paths(const SweepReportFiles& files) {
  std::vector<std::string> paths = files.written;
  paths.insert(paths.end(), files.run_report_dirs.begin(), files.run_report_dirs.end());
  return paths;
}

}  // namespace

std::string sweep_spec_copy_path(const std::string& output_dir) {
  return (std::filesystem::path(output_dir) / "sweep_spec.toml").string();
}

bool is_sweep_output(const std::string& dir) { return std::filesystem::exists(sweep_spec_copy_path(dir)); }

std::vector<std::string> redraw_sweep_report(const std::string& dir, const std::string& output_dir) {
  const SweepSpec spec = load_sweep_spec(sweep_spec_copy_path(dir));
  if (std::filesystem::weakly_canonical(spec.output) != std::filesystem::weakly_canonical(dir))
    throw Error("report: " + sweep_spec_copy_path(dir) + " names output '" + spec.output +
                "', which is not this directory: run `fractrain report` from the directory the sweep ran in");
  return written_paths(write_sweep_report(spec, output_dir));
}

int run_sweep_command(const SweepCommand& command) {
  const SweepSpec spec = load_sweep_spec(command.spec_path, command.overrides);
  if (command.list) {
    for (const auto& run : spec.runs)
      std::printf("%-12s %s  %s\n", to_string(run_state(run)), run_label(run).c_str(), run.config.output.dir.c_str());
    return 0;
  }
  // One sweep at a time runs in its directory: a second one would start the same runs (they lock their own
  // directories too, but would fail one by one). --report-only may redraw while a sweep runs: the table and
  // plots are written atomically.
  std::optional<DirectoryLock> lock;
  if (command.report_only)
    std::filesystem::create_directories(spec.output);
  else
    lock.emplace(create_and_lock_directory(spec.output, command.spec_path + ": output", "fractrain sweep",
                                           "set `output` in the spec"));
  // A copy of the spec beside the results, so `fractrain report OUTPUT` can redraw them later.
  write_file_atomically(sweep_spec_copy_path(spec.output),
                        read_text_file(command.spec_path, "sweep spec", "check the path"));
  SweepOutcome outcome;
  if (!command.report_only) {
    install_stop_handlers();
    SweepOptions options;
    options.jobs = command.jobs;
    outcome = run_sweep(spec, options);
  }
  const SweepReportFiles files = write_sweep_report(spec);
  std::printf("\n%s\n", files.results_table.c_str());
  for (const auto& path : written_paths(files)) std::printf("wrote %s\n", path.c_str());
  for (const auto& failure : outcome.failures) std::printf("failed: %s\n", failure.c_str());
  if (outcome.interrupted)
    std::printf("interrupted: %d runs not started; rerun the same command to finish them\n", outcome.not_started);
  return outcome.failed > 0 || outcome.interrupted ? 1 : 0;
}

}  // namespace fractrain
