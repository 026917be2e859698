#pragma once
// Shared by the step-time benchmarks: how many layer executions of each pass ran on integer codes under
// precision.execution = integer, and the last reason one fell back (docs/integer.md).
#include <cstdio>

#include "fractrain/nn/execution_log.h"

namespace fractrain::bench {

template <typename Model>
void print_integer_passes(const Model& model) {
  ExecutionCounts counts;
  for (const auto& layer : model.quantized_layers()) counts.add(layer->execution_counts());
  std::printf("integer passes: forward %lld/%lld, error backward %lld/%lld, weight gradient %lld/%lld%s%s\n",
              (long long)counts.forward.integer, (long long)(counts.forward.integer + counts.forward.simulated),
              (long long)counts.error_backward.integer,
              (long long)(counts.error_backward.integer + counts.error_backward.simulated),
              (long long)counts.weight_gradient.integer,
              (long long)(counts.weight_gradient.integer + counts.weight_gradient.simulated),
              counts.last_fallback.empty() ? "" : "; last fallback: ", counts.last_fallback.c_str());
}

}  // namespace fractrain::bench
