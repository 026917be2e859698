#include "fractrain/train/run_directory.h"

#include <cstdio>
#include <filesystem>
#include <set>
#include <system_error>

#include "fractrain/util/error.h"

namespace fractrain {
namespace fs = std::filesystem;

namespace {

// Files that are not the run's own output: the lock, and what a sweep writes before it starts the run (the
// run's recipe and the log it appends to across attempts).
const std::set<std::string>& kept_files() {
  static const std::set<std::string> kept = {DirectoryLock::kFileName, "sweep_run.toml", "train.log"};
  return kept;
}

const char* const kElsewhere = "--set output.dir=PATH";

}  // namespace

bool holds_run(const std::string& dir) {
  std::error_code ec;
  for (const char* name : {"config.toml", "metrics.jsonl", "summary.json", "checkpoints/last.ckpt"})
    if (fs::exists(fs::path(dir) / name, ec)) return true;
  return false;
}

void remove_run_outputs(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (kept_files().count(entry.path().filename().string())) continue;
    std::error_code removal;
    fs::remove_all(entry.path(), removal);
    if (removal)
      throw Error("--overwrite: cannot remove " + entry.path().string() + ": " + removal.message() +
                  "; remove it by hand, or choose another directory (" + kElsewhere + ")");
  }
  if (ec) throw Error("--overwrite: cannot list " + dir + ": " + ec.message());
}

DirectoryLock claim_run_directory(const std::string& dir, RunDirectoryUse use, const std::string& continued_run_dir) {
  DirectoryLock lock = create_and_lock_directory(dir, "output.dir", "fractrain run", kElsewhere);
  std::error_code ec;
  // A checkpoint named relative to its own run directory ("checkpoints/last.ckpt") has the run directory "".
  const std::string continued = continued_run_dir.empty() ? "." : continued_run_dir;
  if (use == RunDirectoryUse::Continue && holds_run(dir) && !fs::equivalent(dir, continued, ec))
    throw Error("output.dir = '" + dir + "' holds another run than the one --resume continues (from " +
                continued_run_dir + "): resume into that run's directory or an empty one (" + kElsewhere + ")");
  if (use == RunDirectoryUse::Fresh && holds_run(dir))
    throw Error("output.dir = '" + dir + "' holds a run already: continue it with --resume, replace it with " +
                "--overwrite, or choose another directory (" + kElsewhere + ")");
  if (use == RunDirectoryUse::Replace && holds_run(dir)) {
    std::printf("replacing the run in %s (--overwrite)\n", dir.c_str());
    remove_run_outputs(dir);
  }
  return lock;
}

}  // namespace fractrain
