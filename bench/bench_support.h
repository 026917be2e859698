#pragma once
// Shared by the benchmarks: medians, median call times, and per-step timing with page-fault counts.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace fractrain::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

inline long minor_page_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

struct StepTime {
  double seconds = 0;  // per step
  double faults = 0;   // minor page faults per step: fresh memory from the OS, a hidden cost of allocation
};

// Runs `step` `steps` times and returns the time and page faults per step. `finish` (if given) runs before the
// clock stops: waiting for a device whose work is asynchronous (CUDA), so that the time is the device's.
template <class Step>
StepTime time_per_step(int steps, Step&& step, const std::function<void()>& finish = nullptr) {
  const long faults = minor_page_faults();
  const auto start = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) step();
  if (finish) finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {seconds / steps, static_cast<double>(minor_page_faults() - faults) / steps};
}

// The median time of `reps` calls of f, after one call that warms caches and creates primitives.
template <typename F>
double median_seconds(int reps, F&& f) {
  f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return median(t);
}

}  // namespace fractrain::bench
