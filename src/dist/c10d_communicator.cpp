// Communicator over a c10d backend: every collective is launched as c10d Work and every failure becomes a
// fractrain::Error naming this rank, the collective and the cause. Gloo enforces the group's timeout inside each
// send and receive, so a dead peer fails a collective at once ("Connection closed by peer") and a stuck one after
// the timeout ("Timed out waiting ... for recv"); wait() adds a backstop beyond that in case a backend does not.
#include "c10d_communicator.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <sched.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "fractrain/util/error.h"

namespace fractrain::dist_detail {

std::string exception_cause(const std::exception& error) {
  // c10::Error::what() appends LibTorch's C++ backtrace, which says nothing to a user.
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  std::string text = c10_error ? c10_error->what_without_backtrace() : error.what();
  std::replace(text.begin(), text.end(), '\n', ' ');
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text.empty() ? "unknown error" : text;
}

std::string exception_cause(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return exception_cause(e);
  } catch (...) {
    return "unknown error";
  }
}

std::string seconds_text(std::chrono::duration<double> duration) {
  return fmt::format("{:g}", duration.count());
}

#if FRACTRAIN_HAVE_C10D
namespace {

using Clock = std::chrono::steady_clock;
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

struct GroupInfo {
  int rank;
  std::chrono::milliseconds timeout;
  bool spin_wait;
};

// How long a spinning wait polls before it blocks: longer than a rank's usual lead over its peers within a step
// (a few ms between collectives), far shorter than the waits where blocking costs nothing (rank 0 evaluating,
// writing a checkpoint).
constexpr auto kSpinBeforeBlocking = std::chrono::milliseconds(20);

// Polls until the Work completes or kSpinBeforeBlocking passes, yielding the core at every poll so that Gloo's
// own threads (which do the work) run first wherever they are scheduled. Why: on the 2-vCPU build machine, a
// thread that blocks lets its vCPU idle, and waking it again took milliseconds; a small ProcessGroupGloo
// allreduce between two local ranks' work cost 2.0-2.3 ms blocking and 0.6-0.7 ms polling
// (bench_collective_latency, docs/distributed.md).
void spin_until_completed(const WorkPtr& work) {
  const auto until = Clock::now() + kSpinBeforeBlocking;
  while (!work->isCompleted() && Clock::now() < until) sched_yield();
}

Error collective_failed(const GroupInfo& group, const std::string& what, Clock::time_point started,
                        const std::string& cause) {
  const std::chrono::duration<double> elapsed = Clock::now() - started;
  return Error(fmt::format("rank {}: {} failed after {:.1f} s: {} (a peer died or is stuck; see its output)",
                           group.rank, what, elapsed.count(), cause));
}

// Waits for every Work in launch order; the first failure is the error (later ones are its consequences).
void wait_all(const std::vector<WorkPtr>& works, const GroupInfo& group, const std::string& what,
              Clock::time_point started) {
  // Beyond the backend's own timeout: a collective that is merely queued behind others is not stuck.
  const auto backstop = group.timeout + std::max(group.timeout, std::chrono::milliseconds(10000));
  for (const auto& work : works) {
    try {
      if (group.spin_wait) spin_until_completed(work);
      work->wait(backstop);
    } catch (const std::exception& e) {
      throw collective_failed(group, what, started, exception_cause(e));
    }
  }
}

class C10dPending : public PendingCollective {
 public:
  C10dPending(std::vector<WorkPtr> works, std::vector<at::Tensor> tensors, GroupInfo group, std::string what,
              Clock::time_point started)
      : works_(std::move(works)), tensors_(std::move(tensors)), group_(group), what_(std::move(what)),
        started_(started) {}
  ~C10dPending() override {
    try {
      wait();
    } catch (...) {  // a destructor cannot throw; the owner did not ask for the result
    }
  }

  void wait() override {
    if (!waited_) {
      waited_ = true;
      try {
        wait_all(works_, group_, what_, started_);
      } catch (...) {
        failure_ = std::current_exception();
      }
      works_.clear();
    }
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  std::vector<WorkPtr> works_;
  std::vector<at::Tensor> tensors_;  // the Work's buffers: alive until it completes
  GroupInfo group_;
  std::string what_;
  Clock::time_point started_;
  bool waited_ = false;
  std::exception_ptr failure_;
};

c10d::ReduceOp to_c10d(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return c10d::ReduceOp::SUM;
    case ReduceOp::Min:
      return c10d::ReduceOp::MIN;
    case ReduceOp::Max:
      return c10d::ReduceOp::MAX;
  }
  throw Error("unknown ReduceOp " + std::to_string(static_cast<int>(op)));
}

class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(c10d_compat::BackendPtr backend, c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
                   std::string name, std::chrono::milliseconds timeout, bool spin_wait,
                   std::function<void()> before_destroy)
      : backend_(std::move(backend)), store_(std::move(store)), world_size_(world_size), name_(std::move(name)),
        group_{rank, timeout, spin_wait}, before_destroy_(std::move(before_destroy)) {}
  ~C10dCommunicator() override {
    if (before_destroy_) {
      try {
        before_destroy_();
      } catch (...) {  // shutting down a broken group may fail; the process is leaving it anyway
      }
    }
  }

  int rank() const override { return group_.rank; }
  int world_size() const override { return world_size_; }
  std::string backend_name() const override { return name_; }

  std::unique_ptr<PendingCollective> start_all_reduce(std::vector<at::Tensor> tensors, ReduceOp op,
                                                      const std::string& what) override {
    const auto started = Clock::now();
    for (const auto& tensor : tensors) {
      check_tensor(tensor, what);
      if (name_ == "gloo" && tensor.scalar_type() == at::kBFloat16) {
        throw Error(fmt::format("rank {}: {}: Gloo cannot all-reduce bfloat16 tensors: convert them to float32 "
                                "(or float16) for the exchange",
                                group_.rank, what));
      }
    }
    c10d::AllreduceOptions options;
    options.reduceOp = to_c10d(op);
    options.timeout = group_.timeout;
    std::vector<WorkPtr> works;
    // One Work per tensor: c10d's tensor list means replicas of one tensor (one per device), not several tensors.
    for (auto& tensor : tensors) {
      works.push_back(launch(what, [&] {
        std::vector<at::Tensor> one{tensor};
        return backend_->allreduce(one, options);
      }));
    }
    return std::make_unique<C10dPending>(std::move(works), std::move(tensors), group_, what, started);
  }

  void broadcast(std::vector<at::Tensor> tensors, int root, const std::string& what) override {
    const auto started = Clock::now();
    if (root < 0 || root >= world_size_) {
      throw Error(fmt::format("rank {}: {}: broadcast root {} is not a rank of this group (0..{})", group_.rank,
                              what, root, world_size_ - 1));
    }
    for (const auto& tensor : tensors) check_tensor(tensor, what);
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.timeout = group_.timeout;
    std::vector<WorkPtr> works;
    for (auto& tensor : tensors) {
      works.push_back(launch(what, [&] {
        std::vector<at::Tensor> one{tensor};
        return backend_->broadcast(one, options);
      }));
    }
    wait_all(works, group_, what, started);
  }

  std::vector<at::Tensor> all_gather(const at::Tensor& tensor, const std::string& what) override {
    const auto started = Clock::now();
    check_tensor(tensor, what);
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world_size_; ++r) outputs[0].push_back(at::empty_like(tensor));
    std::vector<at::Tensor> inputs{tensor};
    c10d::AllgatherOptions options;
    options.timeout = group_.timeout;
    const auto work = launch(what, [&] { return backend_->allgather(outputs, inputs, options); });
    wait_all({work}, group_, what, started);
    return outputs[0];
  }

  void barrier(const std::string& what) override {
    const auto started = Clock::now();
    c10d::BarrierOptions options;
    options.timeout = group_.timeout;
    const auto work = launch(what, [&] { return backend_->barrier(options); });
    wait_all({work}, group_, what, started);
  }

 private:
  void check_tensor(const at::Tensor& tensor, const std::string& what) const {
    if (!tensor.defined()) {
      throw Error(fmt::format("rank {}: {}: a tensor is undefined (every rank must pass the same tensors)",
                              group_.rank, what));
    }
    if (!tensor.is_contiguous()) {
      throw Error(fmt::format("rank {}: {}: a tensor of shape {} is not contiguous: pass tensor.contiguous() and "
                              "copy the result back",
                              group_.rank, what, fmt::join(tensor.sizes(), "x")));
    }
  }

  template <typename Launch>
  WorkPtr launch(const std::string& what, Launch&& start) const {
    try {
      return start();
    } catch (const std::exception& e) {
      throw Error(fmt::format("rank {}: could not start {} on {}: {}", group_.rank, what, name_, exception_cause(e)));
    }
  }

  c10d_compat::BackendPtr backend_;
  c10::intrusive_ptr<c10d::Store> store_;
  int world_size_;
  std::string name_;
  GroupInfo group_;
  std::function<void()> before_destroy_;
};

}  // namespace

std::shared_ptr<Communicator> make_c10d_communicator(c10d_compat::BackendPtr backend,
                                                     c10::intrusive_ptr<c10d::Store> store, int rank,
                                                     int world_size, std::string name,
                                                     std::chrono::milliseconds timeout, bool spin_wait,
                                                     std::function<void()> before_destroy) {
  return std::make_shared<C10dCommunicator>(std::move(backend), std::move(store), rank, world_size, std::move(name),
                                            timeout, spin_wait, std::move(before_destroy));
}
#endif  // FRACTRAIN_HAVE_C10D

}  // namespace fractrain::dist_detail
