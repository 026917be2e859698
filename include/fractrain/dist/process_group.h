#pragma once
// Connecting the ranks of a multi-process run: a c10d TCPStore for the rendezvous and a Gloo (CPU) or NCCL (CUDA)
// process group behind the Communicator interface (communicator.h). The c10d and gloo headers stay inside
// src/dist, so this header needs nothing beyond LibTorch's tensors.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "fractrain/dist/communicator.h"

namespace fractrain {

struct ProcessGroupOptions {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // NCCL binds this rank to cuda:local_rank
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Bounds the rendezvous (every rank joining) and then each collective: a peer that is stuck longer makes the
  // collective throw instead of hanging.
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
  std::string backend = "gloo";  // or "nccl"
  // TORCHELASTIC_USE_AGENT_STORE: torchrun's agent already hosts the TCPStore on master_port, so every rank,
  // rank 0 included, connects as a client, under the prefix "/worker/attempt_<restart_count>" (as
  // torch.distributed does), which keeps a restarted group's keys apart from the previous attempt's.
  bool agent_store = false;
  int restart_count = 0;  // TORCHELASTIC_RESTART_COUNT
  // Gloo: a rank waiting for a collective polls it, yielding its core, for up to 20 ms before it blocks. Worth it
  // where every rank has cores of its own (a blocked thread's idle core can take milliseconds to wake, many
  // times per step); wasteful where ranks share cores. NCCL ignores it (its waits are the GPU stream's).
  bool spin_wait = false;
};

// Joins the group: rank 0 hosts the store at master_addr:master_port (unless agent_store), every rank waits until
// all world_size ranks have joined, then the backend connects them. World size 1 gives the single-process
// communicator. Throws fractrain::Error, within about options.timeout, when the options are invalid, the port is
// in use, the master cannot be reached, some rank does not join, or this fractrain lacks the backend (no Gloo
// headers at build time; a LibTorch without NCCL).
std::shared_ptr<Communicator> connect_process_group(const ProcessGroupOptions& options);
// The same ranks connected `groups` times over one rendezvous: independent groups whose collectives never wait
// for each other's (e.g. gradient buckets sent from autograd hooks beside the step's own collectives).
std::vector<std::shared_ptr<Communicator>> connect_process_groups(const ProcessGroupOptions& options, int groups);

// Whether connect_process_group can run this backend ("gloo", "nccl") with more than one rank in this build.
bool process_group_backend_available(const std::string& backend);

}  // namespace fractrain
