#include "thread_communicator.h"

#include <ATen/ATen.h>

#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "fractrain/util/error.h"

namespace fractrain::test_support {
namespace {

enum class Kind { AllReduce, Broadcast, AllGather, Barrier };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::AllReduce: return "all_reduce";
    case Kind::Broadcast: return "broadcast";
    case Kind::AllGather: return "all_gather";
    case Kind::Barrier: return "barrier";
  }
  return "?";
}

std::string describe(const std::vector<at::Tensor>& tensors) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < tensors.size(); ++i) out << (i ? ", " : "") << tensors[i].scalar_type() << tensors[i].sizes();
  out << "]";
  return out.str();
}

// Collective k of every rank.
struct Slot {
  Kind kind = Kind::Barrier;
  ReduceOp op = ReduceOp::Sum;
  int root = 0;
  std::string first_what;
  std::vector<std::vector<at::Tensor>> inputs;  // per rank: copies taken when the rank arrived
  int first_rank = 0;                           // the rank that arrived first, for comparisons
  int arrived = 0, departed = 0;
  bool computed = false;
  std::vector<at::Tensor> result;  // all_reduce and broadcast
  std::string mismatch;
};

struct Meeting {
  Meeting(int n, std::chrono::milliseconds timeout) : world(n), timeout(timeout) {}
  const int world;
  const std::chrono::milliseconds timeout;
  std::mutex mutex;
  std::condition_variable changed;
  std::map<uint64_t, Slot> slots;
  std::string abort_reason;

  void abort(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex);
    if (abort_reason.empty()) abort_reason = reason;
    changed.notify_all();
  }
};

at::Tensor reduce_in_rank_order(const std::vector<at::Tensor>& per_rank, ReduceOp op) {
  at::Tensor acc = per_rank[0].clone();
  for (size_t r = 1; r < per_rank.size(); ++r) {
    switch (op) {
      case ReduceOp::Sum: acc.add_(per_rank[r]); break;
      case ReduceOp::Min: acc = at::minimum(acc, per_rank[r]); break;
      case ReduceOp::Max: acc = at::maximum(acc, per_rank[r]); break;
    }
  }
  return acc;
}

class ThreadCommunicator : public Communicator, public std::enable_shared_from_this<ThreadCommunicator> {
 public:
  ThreadCommunicator(std::shared_ptr<Meeting> meeting, int rank) : meeting_(std::move(meeting)), rank_(rank) {}

  int rank() const override { return rank_; }
  int world_size() const override { return meeting_->world; }
  std::string backend_name() const override { return "threads"; }

  std::unique_ptr<PendingCollective> start_all_reduce(std::vector<at::Tensor> tensors, ReduceOp op,
                                                      const std::string& what) override;
  void broadcast(std::vector<at::Tensor> tensors, int root, const std::string& what) override {
    if (root < 0 || root >= world_size())
      throw Error("threads communicator: broadcast '" + what + "' from root " + std::to_string(root) +
                  " outside 0.." + std::to_string(world_size() - 1));
    const uint64_t k = arrive(Kind::Broadcast, what, tensors, ReduceOp::Sum, root);
    complete(k, what, tensors, nullptr);
  }
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor, const std::string& what) override {
    const uint64_t k = arrive(Kind::AllGather, what, {tensor}, ReduceOp::Sum, 0);
    std::vector<at::Tensor> gathered;
    complete(k, what, {}, &gathered);
    return gathered;
  }
  void barrier(const std::string& what) override {
    const uint64_t k = arrive(Kind::Barrier, what, {}, ReduceOp::Sum, 0);
    complete(k, what, {}, nullptr);
  }

  void abort(const std::string& reason) { meeting_->abort(reason); }

  // Registers this rank's contribution to its next collective; returns that collective's number.
  uint64_t arrive(Kind kind, const std::string& what, const std::vector<at::Tensor>& tensors, ReduceOp op,
                  int root) {
    std::vector<at::Tensor> copies;
    for (const at::Tensor& t : tensors) {
      if (!t.is_contiguous()) throw Error("threads communicator: '" + what + "' got a non-contiguous tensor");
      copies.push_back(t.clone());
    }
    std::lock_guard<std::mutex> lock(meeting_->mutex);
    const uint64_t k = next_++;
    Slot& slot = meeting_->slots[k];
    if (slot.arrived == 0) {
      slot.kind = kind;
      slot.op = op;
      slot.root = root;
      slot.first_what = what + " (rank " + std::to_string(rank_) + ": " + kind_name(kind) + " " +
                        describe(tensors) + ")";
      slot.inputs.resize(static_cast<size_t>(meeting_->world));
      slot.first_rank = rank_;
    } else if (slot.mismatch.empty()) {
      const std::vector<at::Tensor>& other = slot.inputs[static_cast<size_t>(slot.first_rank)];
      bool same = slot.kind == kind && slot.op == op && slot.root == root && other.size() == copies.size();
      for (size_t i = 0; same && i < copies.size(); ++i)
        same = other[i].sizes() == copies[i].sizes() && other[i].scalar_type() == copies[i].scalar_type();
      if (!same)
        slot.mismatch = "threads communicator: collective #" + std::to_string(k) + " differs between ranks: " +
                        slot.first_what + " vs " + what + " (rank " + std::to_string(rank_) + ": " +
                        kind_name(kind) + " " + describe(tensors) + ")";
    }
    slot.inputs[static_cast<size_t>(rank_)] = std::move(copies);
    slot.arrived += 1;
    meeting_->changed.notify_all();
    return k;
  }

  // Waits until every rank arrived at collective k, then writes the result into `outputs` (all_reduce,
  // broadcast) or `gathered` (all_gather).
  void complete(uint64_t k, const std::string& what, const std::vector<at::Tensor>& outputs,
                std::vector<at::Tensor>* gathered) {
    std::unique_lock<std::mutex> lock(meeting_->mutex);
    Slot& slot = meeting_->slots.at(k);
    const auto deadline = std::chrono::steady_clock::now() + meeting_->timeout;
    while (slot.arrived < meeting_->world && meeting_->abort_reason.empty() && slot.mismatch.empty()) {
      if (meeting_->changed.wait_until(lock, deadline) == std::cv_status::timeout &&
          slot.arrived < meeting_->world) {
        throw Error("threads communicator: rank " + std::to_string(rank_) + " waited more than " +
                    std::to_string(meeting_->timeout.count()) + " ms in '" + what + "' (collective #" +
                    std::to_string(k) + "): only " + std::to_string(slot.arrived) + " of " +
                    std::to_string(meeting_->world) + " ranks arrived");
      }
    }
    if (!slot.mismatch.empty()) throw Error(slot.mismatch);
    if (!meeting_->abort_reason.empty() && slot.arrived < meeting_->world)
      throw Error("threads communicator: rank " + std::to_string(rank_) + " abandoned '" + what +
                  "': " + meeting_->abort_reason);
    if (!slot.computed) {
      if (slot.kind == Kind::AllReduce) {
        for (size_t i = 0; i < slot.inputs[0].size(); ++i) {
          std::vector<at::Tensor> per_rank;
          for (const auto& inputs : slot.inputs) per_rank.push_back(inputs[i]);
          slot.result.push_back(reduce_in_rank_order(per_rank, slot.op));
        }
      } else if (slot.kind == Kind::Broadcast) {
        slot.result = slot.inputs[static_cast<size_t>(slot.root)];
      }
      slot.computed = true;
    }
    for (size_t i = 0; i < outputs.size(); ++i) outputs[i].copy_(slot.result[i]);
    if (gathered)
      for (const auto& inputs : slot.inputs) gathered->push_back(inputs[0].clone());
    if (++slot.departed == meeting_->world) meeting_->slots.erase(k);
  }

 private:
  std::shared_ptr<Meeting> meeting_;
  const int rank_;
  uint64_t next_ = 0;
};

class PendingThreadReduce : public PendingCollective {
 public:
  PendingThreadReduce(std::shared_ptr<ThreadCommunicator> owner, uint64_t k, std::vector<at::Tensor> tensors,
                      std::string what)
      : owner_(std::move(owner)), k_(k), tensors_(std::move(tensors)), what_(std::move(what)) {}
  ~PendingThreadReduce() override {
    try {
      wait();
    } catch (...) {  // a destructor must not throw; whoever wanted the result called wait() and saw the error
    }
  }
  void wait() override {
    if (done_) return;
    done_ = true;
    owner_->complete(k_, what_, tensors_, nullptr);
  }

 private:
  std::shared_ptr<ThreadCommunicator> owner_;
  uint64_t k_;
  std::vector<at::Tensor> tensors_;
  std::string what_;
  bool done_ = false;
};

std::unique_ptr<PendingCollective> ThreadCommunicator::start_all_reduce(std::vector<at::Tensor> tensors,
                                                                        ReduceOp op, const std::string& what) {
  const uint64_t k = arrive(Kind::AllReduce, what, tensors, op, 0);
  return std::make_unique<PendingThreadReduce>(shared_from_this(), k, std::move(tensors), what);
}

}  // namespace

std::vector<std::shared_ptr<Communicator>> make_thread_communicators(int n, std::chrono::milliseconds timeout) {
  if (n < 1) throw Error("make_thread_communicators: need at least one rank, got " + std::to_string(n));
  auto meeting = std::make_shared<Meeting>(n, timeout);
  std::vector<std::shared_ptr<Communicator>> out;
  for (int r = 0; r < n; ++r) out.push_back(std::make_shared<ThreadCommunicator>(meeting, r));
  return out;
}

void run_ranks(const std::vector<std::shared_ptr<Communicator>>& communicators,
               const std::function<void(Communicator&)>& body) {
  std::mutex first_mutex;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  for (const auto& communicator : communicators) {
    threads.emplace_back([&, communicator] {
      try {
        body(*communicator);
      } catch (const std::exception& e) {
        {
          std::lock_guard<std::mutex> lock(first_mutex);
          if (!first) first = std::current_exception();
        }
        if (auto* threads_comm = dynamic_cast<ThreadCommunicator*>(communicator.get()))
          threads_comm->abort("rank " + std::to_string(communicator->rank()) + " failed: " + e.what());
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(first_mutex);
          if (!first) first = std::current_exception();
        }
        if (auto* threads_comm = dynamic_cast<ThreadCommunicator*>(communicator.get()))
          threads_comm->abort("rank " + std::to_string(communicator->rank()) + " failed");
      }
    });
  }
  for (auto& thread : threads) thread.join();
  if (first) std::rethrow_exception(first);
}

void run_ranks(int n, const std::function<void(Communicator&)>& body) { run_ranks(make_thread_communicators(n), body); }

}  // namespace fractrain::test_support
