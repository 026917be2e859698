#pragma once
// Running a sweep's runs as `fractrain train` child processes: resumable (finished runs are skipped,
// interrupted ones continue from their last checkpoint), optionally several at a time.
//
// Why child processes: each run gets its own LibTorch state, threads and log file (RUN_DIR/train.log), a
// crash or NaN stop in one run is recorded and the sweep goes on, and SIGINT reaches every run, which writes
// a checkpoint before it exits.
#include <string>
#include <vector>

#include "fractrain/sweep/sweep_spec.h"

namespace fractrain {

enum class RunState {
  Finished,     // summary.json says it ran to its last step with this config
  Interrupted,  // a checkpoint exists: continue from it
  New,          // nothing yet
};
const char* to_string(RunState state);

// Throws fractrain::Error when the directory holds a run made with a config that computes something else
// (the spec changed since): the sweep must not mix results of two specs.
RunState run_state(const SweepRun& run);

struct SweepOptions {
  int jobs = 1;            // runs at a time
  std::string executable;  // the fractrain binary to run (default: this process's own executable)
  bool quiet = false;      // no per-run lines
};

struct SweepOutcome {
  int already_finished = 0, finished = 0, failed = 0, not_started = 0;
  std::vector<std::string> failures;  // "SETTING/METHOD/seed-N: reason (see RUN_DIR/train.log)"
  bool interrupted = false;
};

// Runs what is not finished (the results table is the caller's: write_sweep_report). Stops launching
// new runs on SIGINT/SIGTERM (install_stop_handlers first) and waits for the running ones to checkpoint.
SweepOutcome run_sweep(const SweepSpec& spec, const SweepOptions& options);

}  // namespace fractrain
