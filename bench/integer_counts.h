#pragma once
// Shared by the step-time benchmarks: how many layer executions of each pass ran on integer codes under
// precision.execution = integer, and the last reason one fell back (docs/integer.md).
#include <cstdio>

#include "fractrain/nn/execution_log.h"

namespace fractrain::bench {

// "integer/all passes", and how many of them ran split by sample (some samples on the simulated path).
inline void print_pass_counts(const char* name, const PassCounts& c) {
  std::printf(" %s %lld/%lld", name, (long long)c.integer, (long long)(c.integer + c.split + c.simulated));
  if (c.split > 0) std::printf(" (+%lld split by sample)", (long long)c.split);
}

template <typename Model>
void print_integer_passes(const Model& model) {
  ExecutionCounts counts;
  for (const auto& layer : model.quantized_layers()) counts.add(layer->execution_counts());
  std::printf("integer passes:");
  print_pass_counts("forward", counts.forward);
  std::printf(",");
  print_pass_counts("error backward", counts.error_backward);
  std::printf(",");
  print_pass_counts("weight gradient", counts.weight_gradient);
  std::printf("%s%s\n", counts.last_fallback.empty() ? "" : "; last fallback: ", counts.last_fallback.c_str());
}

}  // namespace fractrain::bench
