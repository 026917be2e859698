#include "fractrain/nn/execution_log.h"

namespace fractrain {

const char* to_string(LayerPass pass) {
  switch (pass) {
    case LayerPass::Forward:
      return "forward";
    case LayerPass::ErrorBackward:
      return "error backward";
    case LayerPass::WeightGradient:
      return "weight gradient";
  }
  return "?";
}

PassCounts& ExecutionCounts::of(LayerPass pass) {
  return pass == LayerPass::Forward ? forward : pass == LayerPass::ErrorBackward ? error_backward : weight_gradient;
}

const PassCounts& ExecutionCounts::of(LayerPass pass) const { return const_cast<ExecutionCounts*>(this)->of(pass); }

void ExecutionCounts::add(const ExecutionCounts& other) {
  for (LayerPass pass : {LayerPass::Forward, LayerPass::ErrorBackward, LayerPass::WeightGradient}) {
    of(pass).integer += other.of(pass).integer;
    of(pass).simulated += other.of(pass).simulated;
    of(pass).split += other.of(pass).split;
  }
  if (!other.last_fallback.empty()) last_fallback = other.last_fallback;
}

void ExecutionLog::ran_integer(LayerPass pass) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_.of(pass).integer;
}

void ExecutionLog::fell_back(LayerPass pass, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_.of(pass).simulated;
  counts_.last_fallback = std::string(to_string(pass)) + ": " + reason;
}

void ExecutionLog::ran_split(LayerPass pass, int64_t simulated, int64_t batch, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++counts_.of(pass).split;
  counts_.last_fallback = std::string(to_string(pass)) + ": " + std::to_string(simulated) + " of " +
                          std::to_string(batch) + " samples: " + reason;
}

ExecutionCounts ExecutionLog::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

void ExecutionLog::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  counts_ = ExecutionCounts{};
}

}  // namespace fractrain
