#pragma once
// `fractrain train`: the training loop with evaluation, metrics, checkpoints and the run summary.
#include <memory>
#include <string>

#include "fractrain/dist/communicator.h"

#include "fractrain/train/run_config.h"
#include "fractrain/train/run_summary.h"

namespace fractrain {

struct TrainOptions {
  std::string resume_from;  // a checkpoint file to continue from ("" = fresh run)
  // A fresh run into an output.dir that holds a run replaces it (removes its files) instead of refusing to
  // start (run_directory.h).
  bool overwrite = false;
  bool quiet = false;       // no progress line (tests)
  // Stop after this many completed steps as if interrupted: checkpoint, summary, no final evaluation
  // (time-sliced jobs; 0 = run to the end).
  int64_t stop_at_step = 0;
  // Fault injection (tests of the non-finite guard, `fractrain train --inject-nan STEP:LAYER`): that quantized
  // layer outputs a NaN during that step (1-based). "" = none.
  std::string inject_nan;
  // With deferred host reads on a GPU (train.host_reads): any host synchronisation inside a training step, after
  // the process's first (cuDNN's algorithm search and the allocator's first blocks may wait), throws naming the
  // call (util/host_sync_check.h). For the GPU tests and for finding a stall; reads at read points are allowed.
  bool forbid_host_sync = false;
  // Data parallel: this process is one rank of the communicator's group (null: a single process). Every rank
  // runs train_run with the same config; rank 0 alone writes the run directory (train/data_parallel.h).
  std::shared_ptr<Communicator> communicator;
  // The same group's second connection, for gradient buckets sent while backward runs (distributed_run.h); null:
  // `communicator` sends them too, after backward.
  std::shared_ptr<Communicator> gradient_communicator;
};

// Runs training to the end (or until SIGINT/SIGTERM, which writes a final checkpoint). First claims
// config.output.dir (run_directory.h: created, locked, and refused if it holds a run and this is neither a
// resume nor an overwrite), then writes into it: config.toml, metrics.jsonl, metrics.csv,
// checkpoints/{last,best}.ckpt, summary.json.
// Returns the summary (what summary.json holds).
RunSummary train_run(const RunConfig& config, const TrainOptions& options = {});

// Where a run directory keeps its latest checkpoint.
std::string last_checkpoint_path(const std::string& output_dir);
std::string best_checkpoint_path(const std::string& output_dir);

}  // namespace fractrain
