#pragma once
// `fractrain train` as several data-parallel ranks: the launcher side (--nproc, --nnodes, --node-rank, --master
// start this node's ranks and watch them) and the rank side (a process whose environment names its place in the
// group: RANK, WORLD_SIZE, ... as set by our launcher, torchrun or a cluster scheduler).
#include <memory>
#include <string>
#include <vector>

#include "fractrain/dist/communicator.h"
#include "fractrain/train/run_config.h"

namespace fractrain {

// The exit status of `fractrain train` stopped on request (SIGINT, SIGTERM, --stop-at) with its checkpoint written.
constexpr int kInterruptedExitStatus = 130;

struct DistributedFlags {
  int nproc = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master;  // HOST:PORT; "" = a free loopback port (one node)
  // Whether the command asked to launch ranks (rather than be one).
  bool launch() const { return nproc > 1 || nnodes > 1; }
};

// The launcher: checks the request and the config (the global batch must split over the ranks), then runs
// this node's ranks with `argv` minus the launch flags, threads split between them, and returns the exit status
// (0 when every rank succeeded). Throws fractrain::Error for an impossible request.
int launch_training_ranks(const DistributedFlags& flags, const RunConfig& config, const std::vector<std::string>& argv);

// The launch flags and their values removed from a command line (both "--nproc 2" and "--nproc=2").
std::vector<std::string> without_launch_flags(const std::vector<std::string>& argv);

// This process's connection to its group when its environment makes it a rank (WORLD_SIZE set): one group for
// the collectives of a step in program order, one for gradient buckets sent from autograd hooks while backward
// runs (they would otherwise interleave with BatchNorm's and the quantizer's collectives in an order that can
// differ between ranks). Null members in a plain process.
struct RankConnection {
  std::shared_ptr<Communicator> step, gradients;
  bool connected() const { return step != nullptr; }
};
RankConnection connect_rank_from_environment(const RunConfig& config);

// The rank this process is according to its environment, or -1 outside a group (for prefixing messages).
int rank_from_environment();

}  // namespace fractrain
