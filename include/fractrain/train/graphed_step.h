#pragma once
// CUDA Graphs for training steps (train.cuda_graphs, docs/gpu.md). A quantized step launches thousands of small
// kernels; captured once as a graph, a step is one launch. A capture records the device work of a function and
// runs none of it; its host code runs once, at capture, so whatever a step does on the host (the cost meter's
// charges, the controller's bookkeeping, the optimizer with its learning rate) stays outside the graph and the
// trainer repeats it after each replay (train/trainer.cpp). The rules a captured step follows: no host
// synchronisation, the same shapes and addresses on every replay (inputs are copied into static buffers), nothing
// that changes between steps baked into the kernels' arguments (the gradient noise's step is read from a device
// counter, QuantizerSettings::noise_step; a precision stage change re-captures).
#include <c10/core/Device.h>

#include <functional>
#include <memory>

#include "fractrain/train/run_config.h"

namespace fractrain {

// Throws fractrain::Error naming the key to change when train.cuda_graphs is set where it cannot work: not on a
// CUDA device, in a build without CUDA, with per-step host reads or data parallelism (both read or exchange inside
// a step), or with DFQ's mixed or candidates execution (their shapes depend on the decisions). `defers_reads` is
// train.host_reads resolved (defers_host_reads).
void check_cuda_graphs(const RunConfig& config, const c10::Device& device, bool data_parallel, bool defers_reads);

class GraphedStep {
 public:
  // True in a build with CUDA (LibTorch's and fractrain's kernels).
  static bool available();

  // Makes a stream of LibTorch's pool on `device` the current one until destruction: warm-up, capture, replays and
  // the eager work between them (optimizer, evaluation) all run there, so that no autograd node of the captured
  // step waits on another stream.
  explicit GraphedStep(const c10::Device& device);
  ~GraphedStep();
  GraphedStep(const GraphedStep&) = delete;
  GraphedStep& operator=(const GraphedStep&) = delete;

  // Records the device work of `step` as the graph (replacing any earlier one). Nothing of it runs yet: replay().
  void capture(const std::function<void()>& step);
  void replay();
  // Drops the graph and its memory (a precision stage change).
  void reset();
  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fractrain
