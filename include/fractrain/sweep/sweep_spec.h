#pragma once
// A sweep: the runs of a comparison (methods x settings x seeds), described in one TOML file and expanded
// into fully resolved run configs. See docs/results.md for the format; configs/sweeps/ for examples.
//
//   [sweep]
//   output = "runs/sweep"          # every run lands in OUTPUT/SETTING/METHOD/seed-N
//   seeds = [1, 2]
//   set = ["train.epochs=4"]       # overrides for every run
//   baseline = "fw8bw8"            # the method savings are measured against (optional)
//   reference = "fp32"             # a second one, usually full precision (optional)
//
//   [[method]]                     # one or more
//   name = "fw8bw8"
//   config = "configs/fashion_mnist_fw8bw8.toml"
//   set = []                       # this method's overrides
//   seeds = [1]                    # optional: a subset of sweep.seeds for this method (e.g. one FP32 reference)
//
//   [[setting]]                    # optional; none = one setting "standard"
//   name = "adaptation"
//   set = ["data.split=classes-b"]
//   pretrain = "configs/fashion_mnist_fp32.toml"   # optional: a run per seed first, whose last weights
//   pretrain_set = ["data.split=classes-a"]        # every method of the setting starts from
//   methods = ["fw8bw8", "fractrain"]              # optional subset of the methods
//
// Overrides apply in the order sweep.set, method.set, setting.set; then the seed, output.dir and (after a
// pretraining run) train.init_from are set by the sweep.
#include <string>
#include <vector>

#include "fractrain/train/run_config.h"

namespace fractrain {

struct SweepRun {
  std::string setting, method;  // method is "pretrain" for a setting's pretraining run
  uint64_t seed = 0;
  RunConfig config;             // resolved; config.output.dir is the run's directory
  int depends_on = -1;          // index of the pretraining run this one starts from, or -1
};

struct SweepSpec {
  std::string source;  // the file, for messages
  std::string output;
  std::vector<uint64_t> seeds;
  std::string baseline, reference;
  std::vector<std::string> methods;   // in the file's order (the table's row order)
  std::vector<std::string> settings;  // likewise
  std::vector<SweepRun> runs;         // pretraining runs before the runs that depend on them
};

// "SETTING/METHOD/seed-N": a run's name in messages and tables, and its directory under the sweep's output.
std::string run_label(const std::string& setting, const std::string& method, uint64_t seed);
inline std::string run_label(const SweepRun& run) { return run_label(run.setting, run.method, run.seed); }

// Reads and expands a spec. `extra_overrides` (the command line's --set) apply to every run after the
// spec's own. Throws fractrain::Error naming the file and the key for anything malformed: unknown keys,
// duplicate or unknown method names, an unreadable recipe, an override that does not apply.
SweepSpec load_sweep_spec(const std::string& path, const std::vector<std::string>& extra_overrides = {});
SweepSpec parse_sweep_spec(const std::string& toml_text, const std::string& source_name,
                           const std::vector<std::string>& extra_overrides = {});

}  // namespace fractrain
