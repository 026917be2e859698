#pragma once
// The collectives a data-parallel run needs, independent of the transport: c10d Gloo or NCCL between processes
// (gloo_communicator.h), nothing at all in a single process, or threads of one process in tests. Everything in
// fractrain that must agree across ranks (gradients, BatchNorm statistics, quantizer ranges, DFQ's batch cp, the
// cost meter's counts, training metrics) goes through this interface.
//
// Contract shared by every implementation:
// - every rank starts the same collectives, with tensors of the same shapes and dtypes, in the same order;
// - tensors are contiguous and are reduced or overwritten in place;
// - a failure (a peer that died, a timeout) throws fractrain::Error naming `what`, this rank and the cause, so a
//   run ends with a message rather than a hang.
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace fractrain {

enum class ReduceOp { Sum, Min, Max };

// A collective in flight. wait() blocks until it has completed on this rank (its tensors hold the result) and
// throws fractrain::Error if it failed. Waiting twice is allowed; destroying an unwaited collective waits.
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // "gloo", "nccl", "single", "threads": for logs and errors.
  virtual std::string backend_name() const = 0;

  // Starts reducing `tensors` element-wise over all ranks, in place. Sum on floating tensors adds in an order
  // that may differ from a sequential sum, but every rank receives the same bits.
  virtual std::unique_ptr<PendingCollective> start_all_reduce(std::vector<at::Tensor> tensors, ReduceOp op,
                                                              const std::string& what) = 0;
  // Overwrites `tensors` on every rank with root's.
  virtual void broadcast(std::vector<at::Tensor> tensors, int root, const std::string& what) = 0;
  // Every rank's `tensor` (same shape everywhere), in rank order.
  virtual std::vector<at::Tensor> all_gather(const at::Tensor& tensor, const std::string& what) = 0;
  virtual void barrier(const std::string& what) = 0;

  // start_all_reduce(...) then wait().
  void all_reduce(std::vector<at::Tensor> tensors, ReduceOp op, const std::string& what) {
    start_all_reduce(std::move(tensors), op, what)->wait();
  }
  bool distributed() const { return world_size() > 1; }
};

// World size 1: every collective leaves its tensors as they are.
std::shared_ptr<Communicator> make_single_process_communicator();

}  // namespace fractrain
