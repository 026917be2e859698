#pragma once
// Starting the ranks of a data-parallel run, torchrun-style: each rank is a process that finds its place in the
// group in its environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), whether a
// launcher of ours started it (run_local_ranks) or torchrun did (--no-python).
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fractrain/dist/process_group.h"

namespace fractrain {

// This process's place in the group, as the conventional environment variables give it.
struct DistributedEnvironment {
  int rank = 0;              // RANK
  int world_size = 1;        // WORLD_SIZE
  int local_rank = 0;        // LOCAL_RANK (default: RANK)
  int local_world_size = 1;  // LOCAL_WORLD_SIZE (default: WORLD_SIZE)
  std::string master_addr;   // MASTER_ADDR (required when WORLD_SIZE > 1)
  int master_port = 29500;   // MASTER_PORT (default: torch's 29500)
  bool agent_store = false;  // TORCHELASTIC_USE_AGENT_STORE (True/False, 1/0)
  int restart_count = 0;     // TORCHELASTIC_RESTART_COUNT

  // The options connect_process_group needs, with the caller's timeout and backend.
  ProcessGroupOptions process_group_options(std::chrono::milliseconds timeout, const std::string& backend) const;
};

// nullopt when WORLD_SIZE is unset (a plain single-process run); otherwise the parsed, validated environment.
// Throws fractrain::Error naming the variable and its value when one is malformed (not a number, rank >= world
// size, MASTER_ADDR missing with WORLD_SIZE > 1, a port outside 1..65535).
std::optional<DistributedEnvironment> distributed_environment_from_env();
// The same from any lookup (tests): `lookup(name)` returns the value or nullptr.
std::optional<DistributedEnvironment> distributed_environment_from(
    const std::function<const char*(const char*)>& lookup);

// What `fractrain launch` is asked to start on this node.
struct LaunchRequest {
  int nproc = 1;       // ranks on this node
  int nnodes = 1;      // nodes; world size = nproc * nnodes
  int node_rank = 0;   // this node's index; its ranks are node_rank * nproc ... + nproc - 1
  std::string master;  // "HOST:PORT" ("[v6addr]:PORT"); "" = a free loopback port, only with nnodes == 1
};

struct MasterAddress {
  std::string host;
  int port = 0;
};

// Throws fractrain::Error naming the field when the request is impossible (nproc or nnodes < 1, node_rank outside
// 0..nnodes-1, nnodes > 1 without a master, a master that is not HOST:PORT with PORT in 1..65535).
void validate_launch_request(const LaunchRequest& request);
// "HOST:PORT" → its parts; throws fractrain::Error saying the expected form.
MasterAddress parse_master_address(const std::string& text);
// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed).
int pick_free_loopback_port();

struct LaunchOptions {
  // The program every rank runs: this program itself by default.
  std::string executable = "/proc/self/exe";
  // After one rank fails, how long the others get between SIGTERM and SIGKILL.
  std::chrono::milliseconds grace_period{std::chrono::seconds(10)};
  // The exit status of a rank that stopped on request with its work saved (fractrain train: 130, after SIGINT,
  // SIGTERM or --stop-at): not a failure, so the others are left to stop on their own; the launcher returns it
  // when no rank failed. 0: none.
  int stopped_status = 0;
};

// Starts request.nproc ranks of this node, each executing options.executable with argv_for_ranks (argv[0]
// included) and this process's environment plus RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, OMP_NUM_THREADS and FRACTRAIN_THREADS (both threads_per_rank), and waits for all of them.
// - SIGINT and SIGTERM to this process are forwarded to every rank (which checkpoint and stop); a second one
//   kills them with SIGKILL.
// - When a rank exits non-zero or dies by a signal, prints "fractrain: rank R (pid P) exited with status S" or
//   "... was killed by signal N (SIGNAME)" on stderr, sends SIGTERM to the others and SIGKILL to those still
//   running after options.grace_period.
// Returns 0 when every rank exited with 0; otherwise the first failure's exit status (128 + N for signal N), or
// options.stopped_status when ranks stopped on request and none failed.
// Throws fractrain::Error for an invalid request or when a rank cannot be started.
int run_local_ranks(const LaunchRequest& request, const std::vector<std::string>& argv_for_ranks,
                    int threads_per_rank, const LaunchOptions& options = {});

}  // namespace fractrain
