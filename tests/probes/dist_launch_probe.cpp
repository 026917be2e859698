// A test-only program for tests/test_dist_launch.cpp, playing both parts of a launch:
//   dist_launch_probe launch NPROC GRACE_MS RANK_ARGS...   runs run_local_ranks, whose ranks are this program
//                                                          again (/proc/self/exe) with RANK_ARGS
//   dist_launch_probe rank DIR MODE                        a rank: writes its environment to DIR/env_<RANK>, then
//     ok           exits 0
//     fail1        rank 1 exits 3 once rank 0 is ready; the others wait for SIGTERM
//     fail1-stuck  the same, but the others ignore SIGTERM (the launcher must SIGKILL them)
//     wait         waits for SIGTERM, writes DIR/term_<RANK> and exits 0 (a rank that checkpoints and stops)
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fractrain/dist/launch.h"
#include "fractrain/util/error.h"

namespace {

volatile sig_atomic_t g_terminated = 0;
extern "C" void on_term(int) { g_terminated = 1; }

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "<unset>";
}

void touch(const std::string& path) { std::ofstream(path) << "x"; }

int run_rank(const std::string& dir, const std::string& mode) {
  const std::string rank = env("RANK");
  if (mode == "fail1-stuck" && rank != "1") {
    ::signal(SIGTERM, SIG_IGN);
  } else {
    ::signal(SIGTERM, on_term);
  }
  {
    std::ofstream out(dir + "/env_" + rank);
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                             "OMP_NUM_THREADS", "FRACTRAIN_THREADS"}) {
      out << name << "=" << env(name) << "\n";
    }
  }
  touch(dir + "/ready_" + rank);
  if (mode == "ok") return 0;
  if ((mode == "fail1" || mode == "fail1-stuck") && rank == "1") {
    // Fail only once rank 0 runs (and handles SIGTERM), so what the launcher does to it is deterministic.
    for (int i = 0; i < 1000 && !std::filesystem::exists(dir + "/ready_0"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 3;
  }
  for (int i = 0; i < 6000 && !g_terminated; ++i) {  // at most a minute: a leaked probe must not live forever
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!g_terminated) return 4;
  touch(dir + "/term_" + rank);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv, argv + argc);
  try {
    if (args.size() >= 4 && args[1] == "launch") {
      fractrain::LaunchRequest request;
      request.nproc = std::stoi(args[2]);
      fractrain::LaunchOptions options;
      options.grace_period = std::chrono::milliseconds(std::stoi(args[3]));
      std::vector<std::string> rank_argv{args[0]};
      rank_argv.insert(rank_argv.end(), args.begin() + 4, args.end());
      return fractrain::run_local_ranks(request, rank_argv, 2, options);
    }
    if (args.size() == 4 && args[1] == "rank") return run_rank(args[2], args[3]);
  } catch (const fractrain::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "usage: dist_launch_probe launch NPROC GRACE_MS RANK_ARGS... | rank DIR MODE\n");
  return 2;
}
