#include "fractrain/sweep/sweep_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "fractrain/train/resume_compatibility.h"
#include "fractrain/train/run_directory.h"
#include "fractrain/train/run_summary.h"
#include "fractrain/train/trainer.h"
#include "fractrain/util/atomic_file.h"
#include "fractrain/util/error.h"
#include "fractrain/util/stop_signal.h"

namespace fractrain {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string run_file(const SweepRun& run, const char* name) { return (fs::path(run.config.output.dir) / name).string(); }

void check_same_config(const SweepRun& run, const RunConfig& recorded, const std::string& recorded_in) {
  const auto differences = compute_differences(recorded, run.config);
  if (!differences.empty())
    throw Error(fmt::format("sweep run {} in {} was made with another config than the spec now gives (before = "
                            "{}):\n{}\nrestore the spec, or delete {} to run it again",
                            run_label(run), run.config.output.dir, recorded_in, fmt::join(differences, "\n"),
                            run.config.output.dir));
}

std::string self_executable() {
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (error) throw Error("sweep: cannot find this program's path (/proc/self/exe): pass --executable");
  return self.string();
}

struct Child {
  pid_t pid = -1;
  size_t run = 0;
  Clock::time_point started;
};

// Forks `fractrain train --config RUN_DIR/sweep_run.toml [--resume]`, output appended to RUN_DIR/train.log:
// away from a terminal the progress line is one line every train.log_every steps, so `tail -f` follows a run.
Child launch(const std::string& executable, const SweepRun& run, size_t index, bool resume) {
  fs::create_directories(run.config.output.dir);
  const std::string config_path = run_file(run, "sweep_run.toml");
  write_file_atomically(config_path, to_toml(run.config));
  const std::string log_path = run_file(run, "train.log");
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) throw Error("sweep: cannot open " + log_path + " for writing");
  std::vector<std::string> args = {executable, "train", "--config", config_path};
  if (resume) args.push_back("--resume");
  // A run with no checkpoint and no finished summary left only the start of an attempt behind: start it over.
  else if (holds_run(run.config.output.dir)) args.push_back("--overwrite");
  const pid_t pid = fork();
  if (pid < 0) {
    ::close(log);
    throw Error("sweep: cannot start a process for " + run_label(run) + " (fork failed)");
  }
  if (pid == 0) {
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(executable.c_str(), argv.data());
    std::fprintf(stderr, "sweep: cannot execute %s\n", executable.c_str());
    ::_exit(127);
  }
  ::close(log);
  return Child{pid, index, Clock::now()};
}

// The last non-empty line of the run's log: usually the error that stopped it.
std::string last_log_line(const SweepRun& run) {
  std::ifstream in(run_file(run, "train.log"));
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last;
}

std::string describe_result(const SweepRun& run) {
  try {
    const RunSummary s = read_run_summary(run_summary_path(run.config.output.dir));
    return fmt::format("test accuracy {:.2f}%, cp {:.2f}%", 100.0 * s.final_test_accuracy, s.run_cost().cp_percent);
  } catch (const std::exception&) {
    return "no summary";
  }
}

std::string format_seconds(double s) {
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 7200) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.1f} h", s / 3600);
}

}  // namespace

const char* to_string(RunState state) {
  switch (state) {
    case RunState::Finished: return "finished";
    case RunState::Interrupted: return "interrupted";
    case RunState::New: return "new";
  }
  return "?";
}

RunState run_state(const SweepRun& run) {
  const std::string summary_path = run_summary_path(run.config.output.dir);
  if (fs::exists(summary_path)) {
    const RunSummary summary = read_run_summary(summary_path);
    RunConfig recorded;
    try {
      recorded = load_run_config(run_file(run, "config.toml"));
    } catch (const Error&) {
      throw Error(run_file(run, "config.toml") + " is missing or damaged: delete " + run.config.output.dir +
                  " to run " + run_label(run) + " again");
    }
    check_same_config(run, recorded, run_file(run, "config.toml"));
    if (summary.finished()) return RunState::Finished;
  }
  const std::string checkpoint = last_checkpoint_path(run.config.output.dir);
  if (fs::exists(checkpoint)) return RunState::Interrupted;
  return RunState::New;
}

SweepOutcome run_sweep(const SweepSpec& spec, const SweepOptions& options) {
  const std::string executable = options.executable.empty() ? self_executable() : options.executable;
  const int jobs = std::max(1, options.jobs);
  SweepOutcome outcome;

  std::vector<RunState> states;
  for (const auto& run : spec.runs) states.push_back(run_state(run));  // every config checked before any starts
  std::vector<bool> done(spec.runs.size(), false), failed(spec.runs.size(), false);
  std::vector<size_t> pending;
  for (size_t i = 0; i < spec.runs.size(); ++i) {
    if (states[i] == RunState::Finished) {
      done[i] = true;
      ++outcome.already_finished;
    } else {
      pending.push_back(i);
    }
  }
  const size_t to_run = pending.size();
  if (!options.quiet)
    std::printf("sweep %s: %zu runs, %d already finished, %zu to run, %d at a time\n", spec.source.c_str(),
                spec.runs.size(), outcome.already_finished, to_run, jobs);
  std::fflush(stdout);

  std::vector<Child> running;
  const auto sweep_start = Clock::now();
  size_t completed = 0;
  bool forwarded_stop = false;
  while (!pending.empty() || !running.empty()) {
    // Launch what may start: a free slot, its pretraining run finished (or failed: then it fails too).
    for (auto it = pending.begin(); !stop_requested() && it != pending.end() && static_cast<int>(running.size()) < jobs;) {
      const SweepRun& run = spec.runs[*it];
      if (run.depends_on >= 0 && failed[static_cast<size_t>(run.depends_on)]) {
        failed[*it] = true;
        ++outcome.failed;
        outcome.failures.push_back(run_label(run) + ": its pretraining run failed");
        it = pending.erase(it);
        continue;
      }
      if (run.depends_on >= 0 && !done[static_cast<size_t>(run.depends_on)]) {
        ++it;
        continue;
      }
      const bool resume = states[*it] == RunState::Interrupted;
      running.push_back(launch(executable, run, *it, resume));
      if (!options.quiet) std::printf("  start  %s%s\n", run_label(run).c_str(), resume ? " (resuming)" : "");
      std::fflush(stdout);
      it = pending.erase(it);
    }
    if (running.empty()) break;  // stopping, or nothing can start

    // Poll rather than block, so a SIGTERM sent to the sweep alone still reaches the runs (SIGINT from a
    // terminal reaches them directly): each writes a checkpoint and exits.
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR) throw Error("sweep: waiting for the runs failed");
    if (pid <= 0) {
      if (stop_requested() && !forwarded_stop) {
        for (const auto& c : running) ::kill(c.pid, SIGTERM);
        forwarded_stop = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    auto child = std::find_if(running.begin(), running.end(), [&](const Child& c) { return c.pid == pid; });
    if (child == running.end()) continue;
    const SweepRun& run = spec.runs[child->run];
    const double seconds = std::chrono::duration<double>(Clock::now() - child->started).count();
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const size_t index = child->run;
    running.erase(child);
    if (ok && run_state(run) == RunState::Finished) {
      done[index] = true;
      ++outcome.finished;
      ++completed;
      if (!options.quiet) {
        const double elapsed = std::chrono::duration<double>(Clock::now() - sweep_start).count();
        const double eta = elapsed / static_cast<double>(completed) * static_cast<double>(to_run - completed);
        std::printf("  done   %s in %s: %s   [%zu/%zu, ETA %s]\n", run_label(run).c_str(),
                    format_seconds(seconds).c_str(), describe_result(run).c_str(), completed, to_run,
                    completed < to_run ? format_seconds(eta).c_str() : "-");
      }
    } else if (stop_requested()) {
      outcome.interrupted = true;
      if (!options.quiet) std::printf("  paused %s (continue with the same command)\n", run_label(run).c_str());
    } else {
      failed[index] = true;
      ++outcome.failed;
      const std::string reason = WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                                     : fmt::format("exit status {}", WEXITSTATUS(status));
      outcome.failures.push_back(fmt::format("{}: {}: {} (see {})", run_label(run), reason, last_log_line(run),
                                             run_file(run, "train.log")));
      if (!options.quiet) std::printf("  FAILED %s: %s\n", run_label(run).c_str(), outcome.failures.back().c_str());
    }
    std::fflush(stdout);
  }
  outcome.not_started = static_cast<int>(pending.size());
  if (stop_requested()) outcome.interrupted = true;
  return outcome;
}

}  // namespace fractrain
