#include "fractrain/dist/timed_communicator.h"

#include <chrono>

namespace fractrain {
namespace {

using Clock = std::chrono::steady_clock;

// Adds the time from construction to destruction to the clock.
class Span {
 public:
  explicit Span(CommunicationClock& clock) : clock_(clock), start_(Clock::now()) {}
  ~Span() {
    clock_.nanoseconds += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start_).count();
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

 private:
  CommunicationClock& clock_;
  Clock::time_point start_;
};

class TimedPending : public PendingCollective {
 public:
  TimedPending(std::unique_ptr<PendingCollective> inner, std::shared_ptr<CommunicationClock> clock)
      : inner_(std::move(inner)), clock_(std::move(clock)) {}
  void wait() override {
    Span span(*clock_);
    inner_->wait();
  }

 private:
  std::unique_ptr<PendingCollective> inner_;
  std::shared_ptr<CommunicationClock> clock_;
};

class TimedCommunicator : public Communicator {
 public:
  TimedCommunicator(std::shared_ptr<Communicator> inner, std::shared_ptr<CommunicationClock> clock)
      : inner_(std::move(inner)), clock_(std::move(clock)) {}

  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  std::string backend_name() const override { return inner_->backend_name(); }

  std::unique_ptr<PendingCollective> start_all_reduce(std::vector<at::Tensor> tensors, ReduceOp op,
                                                      const std::string& what) override {
    ++clock_->collectives;
    Span span(*clock_);
    return std::make_unique<TimedPending>(inner_->start_all_reduce(std::move(tensors), op, what), clock_);
  }
  void broadcast(std::vector<at::Tensor> tensors, int root, const std::string& what) override {
    ++clock_->collectives;
    Span span(*clock_);
    inner_->broadcast(std::move(tensors), root, what);
  }
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor, const std::string& what) override {
    ++clock_->collectives;
    Span span(*clock_);
    return inner_->all_gather(tensor, what);
  }
  void barrier(const std::string& what) override {
    ++clock_->collectives;
    Span span(*clock_);
    inner_->barrier(what);
  }

 private:
  std::shared_ptr<Communicator> inner_;
  std::shared_ptr<CommunicationClock> clock_;
};

}  // namespace

std::shared_ptr<Communicator> with_timing(std::shared_ptr<Communicator> inner, std::shared_ptr<CommunicationClock> clock) {
  return std::make_shared<TimedCommunicator>(std::move(inner), std::move(clock));
}

}  // namespace fractrain
