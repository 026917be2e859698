#pragma once
// --device for the step-time benchmarks: the device named on the command line, and what ends a timed run there
// (CUDA work is asynchronous: the run ends when the GPU has finished it, not when the host has queued it).
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "fractrain/train/run_components.h"

namespace fractrain::bench {

// The device `name` names (cpu, cuda, cuda:N); exits with status 2 and the reason when there is none.
inline c10::Device device_or_exit(const std::string& name) {
  try {
    return resolve_device(name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "--device: %s\n", e.what());
    std::exit(2);
  }
}

// What time_per_step runs before it stops the clock on `device` (nothing on the CPU).
inline std::function<void()> finish_on(const c10::Device& device) {
  if (!device.is_cuda()) return nullptr;
  return [] { torch::cuda::synchronize(); };
}

}  // namespace fractrain::bench
