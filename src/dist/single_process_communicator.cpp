#include <ATen/ATen.h>

#include "fractrain/dist/communicator.h"

namespace fractrain {
namespace {

class Done : public PendingCollective {
 public:
  void wait() override {}
};

class SingleProcessCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend_name() const override { return "single"; }
  std::unique_ptr<PendingCollective> start_all_reduce(std::vector<at::Tensor>, ReduceOp, const std::string&) override {
    return std::make_unique<Done>();
  }
  void broadcast(std::vector<at::Tensor>, int, const std::string&) override {}
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor, const std::string&) override { return {tensor.clone()}; }
  void barrier(const std::string&) override {}
};

}  // namespace

std::shared_ptr<Communicator> make_single_process_communicator() {
  return std::make_shared<SingleProcessCommunicator>();
}

}  // namespace fractrain
