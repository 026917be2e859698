#pragma once
// The rules for a run's output directory (output.dir), checked before any training starts:
//  - it must be a directory this user can create and write (else an Error naming it and the fix);
//  - one writer at a time: a run holds a DirectoryLock on it until it ends;
//  - a fresh run refuses a directory that already holds a run, so nothing a user saved is replaced by accident:
//    `--resume` continues that run, `--overwrite` replaces it.
#include <string>

#include "fractrain/util/directory_lock.h"

namespace fractrain {

enum class RunDirectoryUse {
  Fresh,     // a new run: the directory may not hold one
  Continue,  // --resume: the directory may hold the run being continued, and no other
  Replace,   // --overwrite: a run the directory holds is removed first
};

// Creates the directory if needed, takes its lock and applies the rule for `use`. The returned lock must live
// as long as the run writes into the directory. `continued_run_dir` (Continue only) is the directory of the
// checkpoint being resumed: a run may resume into its own directory or a new one, not over another run.
DirectoryLock claim_run_directory(const std::string& dir, RunDirectoryUse use, const std::string& continued_run_dir = "");

// Whether `dir` holds (part of) a run: its config.toml, metrics, summary or a checkpoint.
bool holds_run(const std::string& dir);

// Removes what a run wrote into `dir` (everything but the lock and the files a sweep keeps there:
// sweep_run.toml and its train.log). Only for a directory that holds_run.
void remove_run_outputs(const std::string& dir);

}  // namespace fractrain
