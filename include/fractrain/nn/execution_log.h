#pragma once
// What a quantized layer's passes actually ran on under integer execution (precision.execution = integer):
// integer kernels, or the simulated path, and why the last fallback happened. Runs report it next to the
// modelled cost, so that a run never claims integer speed for passes that fell back.
#include <cstdint>
#include <mutex>
#include <string>

namespace fractrain {

enum class LayerPass { Forward, ErrorBackward, WeightGradient };
const char* to_string(LayerPass pass);

// Passes that ran on integer kernels, on the simulated path, and split by sample: DFQ's samples whose gradient
// width the integer kernels take on integers, the others (12-bit gradients) on the simulated path.
struct PassCounts {
  int64_t integer = 0, simulated = 0, split = 0;
};

struct ExecutionCounts {
  PassCounts forward, error_backward, weight_gradient;
  std::string last_fallback;  // "<pass>: <reason>", empty when nothing fell back, not even some samples
  PassCounts& of(LayerPass pass);
  const PassCounts& of(LayerPass pass) const;
  void add(const ExecutionCounts& other);
};

// Shared by a layer and its backward nodes (the backward pass may run on another thread).
class ExecutionLog {
 public:
  void ran_integer(LayerPass pass);
  void fell_back(LayerPass pass, const std::string& reason);
  // `simulated` of `batch` samples ran on the simulated path for `reason`, the others on integer kernels.
  void ran_split(LayerPass pass, int64_t simulated, int64_t batch, const std::string& reason);
  ExecutionCounts counts() const;
  void reset();

 private:
  mutable std::mutex mutex_;
  ExecutionCounts counts_;
};

}  // namespace fractrain
