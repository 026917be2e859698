#include "fractrain/train/distributed_run.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "fractrain/dist/launch.h"
#include "fractrain/dist/process_group.h"
#include "fractrain/train/data_parallel.h"

namespace fractrain {
namespace {

const std::vector<std::string>& launch_flags() {
  static const std::vector<std::string> flags = {"--nproc", "--nnodes", "--node-rank", "--master"};
  return flags;
}

// The cores each rank gets: train.threads (or every core) shared out, at least one each.
int threads_per_rank(const RunConfig& config, int nproc) {
  const int total = config.train.threads > 0 ? static_cast<int>(config.train.threads)
                                             : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, total / nproc);
}

std::chrono::milliseconds timeout_of(const RunConfig& config) {
  return std::chrono::milliseconds(static_cast<int64_t>(config.train.comm_timeout_s * 1000.0));
}

// The cores this process may run on (its affinity mask, as taskset or a scheduler sets it).
int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// train.comm_wait = auto spins when this node's ranks, each with its threads (FRACTRAIN_THREADS from the
// launcher, else train.threads, else every core), fit the cores: then a spinning rank takes no core another needs.
bool spin_while_waiting(const RunConfig& config, const DistributedEnvironment& env) {
  if (config.train.comm_wait != "auto") return config.train.comm_wait == "spin";
  const int cores = usable_cores();
  int threads = config.train.threads > 0 ? static_cast<int>(config.train.threads) : cores;
  if (const char* launched = std::getenv("FRACTRAIN_THREADS")) threads = std::max(1, std::atoi(launched));
  return static_cast<int64_t>(env.local_world_size) * threads <= cores;
}

}  // namespace

std::vector<std::string> without_launch_flags(const std::vector<std::string>& argv) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    bool dropped = false;
    for (const auto& flag : launch_flags()) {
      if (a == flag) {
        ++i;  // and its value
        dropped = true;
      } else if (a.rfind(flag + "=", 0) == 0) {
        dropped = true;
      }
    }
    if (!dropped) out.push_back(a);
  }
  return out;
}

int launch_training_ranks(const DistributedFlags& flags, const RunConfig& config, const std::vector<std::string>& argv) {
  LaunchRequest request;
  request.nproc = flags.nproc;
  request.nnodes = flags.nnodes;
  request.node_rank = flags.node_rank;
  request.master = flags.master;
  validate_launch_request(request);
  const int64_t world = static_cast<int64_t>(flags.nproc) * flags.nnodes;
  check_batch_splits_over_ranks(config.train.batch_size, world);
  const int threads = threads_per_rank(config, flags.nproc);
  std::printf("fractrain: starting %d rank(s) on this node (%lld in all), %d thread(s) each\n", flags.nproc,
              (long long)world, threads);
  std::fflush(stdout);
  LaunchOptions options;
  options.stopped_status = kInterruptedExitStatus;
  return run_local_ranks(request, without_launch_flags(argv), threads, options);
}

RankConnection connect_rank_from_environment(const RunConfig& config) {
  const std::optional<DistributedEnvironment> env = distributed_environment_from_env();
  if (!env || env->world_size <= 1) return {};
  const std::string backend = config.train.device.rfind("cuda", 0) == 0 ? "nccl" : "gloo";
  ProcessGroupOptions options = env->process_group_options(timeout_of(config), backend);
  options.spin_wait = spin_while_waiting(config, *env);
  std::vector<std::shared_ptr<Communicator>> groups = connect_process_groups(options, 2);
  return RankConnection{groups.at(0), groups.at(1)};
}

int rank_from_environment() {
  const char* world = std::getenv("WORLD_SIZE");
  const char* rank = std::getenv("RANK");
  if (!world || !rank) return -1;
  char* end = nullptr;
  const long r = std::strtol(rank, &end, 10);
  return end != rank && *end == '\0' && r >= 0 ? static_cast<int>(r) : -1;
}

}  // namespace fractrain
