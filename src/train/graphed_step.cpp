#include "fractrain/train/graphed_step.h"

#include <fmt/format.h>

#include "fractrain/util/error.h"

#ifdef FRACTRAIN_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>
#endif

namespace fractrain {

void check_cuda_graphs(const RunConfig& config, const c10::Device& device, bool data_parallel, bool defers_reads) {
  if (!config.train.cuda_graphs) return;
  if (!device.is_cuda())
    throw Error("train.cuda_graphs = true needs a CUDA device (train.device = \"" + config.train.device +
                "\"); set train.device = \"cuda\" or train.cuda_graphs = false");
  if (!GraphedStep::available())
    throw Error("train.cuda_graphs = true: this build of fractrain has no CUDA support (build it against a CUDA "
                "LibTorch with scripts/gpu_build.sh), or set train.cuda_graphs = false");
  if (data_parallel)
    throw Error("train.cuda_graphs = true works in one process only: data-parallel ranks exchange gradients inside "
                "the step; set train.cuda_graphs = false");
  if (!defers_reads)
    throw Error(fmt::format("train.cuda_graphs = true needs deferred host reads (a captured step cannot read its "
                            "loss); set train.host_reads = \"deferred\" or \"auto\" (now \"{}\") with "
                            "train.on_nonfinite = \"stop\" (now \"{}\")",
                            config.train.host_reads, config.train.on_nonfinite));
  if (config.precision.execution == ExecutionMode::Integer)
    throw Error("train.cuda_graphs = true cannot capture precision.execution = \"integer\" (oneDNN's int8 kernels "
                "run on the CPU and read their ranges on the host); set precision.execution = \"simulated\"");
  // The transformer seeds its dropout masks from the step on the host, which a replay would not see.
  if (config.model.name.rfind("transformer", 0) == 0 && config.model.dropout > 0)
    throw Error(fmt::format("train.cuda_graphs = true cannot replay the transformer's dropout (model.dropout = {}: "
                            "its masks are seeded per step on the host); set model.dropout = 0 or "
                            "train.cuda_graphs = false",
                            config.model.dropout));
  const bool gated = config.precision.mode == PrecisionMode::Dfq || config.precision.mode == PrecisionMode::FracTrain;
  if (gated && config.dfq.execution != GateExecution::Masked)
    throw Error(fmt::format("train.cuda_graphs = true with DFQ needs dfq.execution = \"masked\" (now \"{}\"): "
                            "mixed and candidates execution take shapes from the gates' decisions, which a graph "
                            "cannot replay",
                            to_string(config.dfq.execution)));
}

#ifdef FRACTRAIN_HAVE_CUDA_KERNELS

struct GraphedStep::Impl {
  c10::cuda::CUDAStream stream;
  c10::cuda::CUDAStreamGuard current;  // the pool stream is current while the GraphedStep lives
  std::optional<at::cuda::CUDAGraph> graph;
  explicit Impl(c10::cuda::CUDAStream s) : stream(s), current(s) {}
};

bool GraphedStep::available() { return true; }

GraphedStep::GraphedStep(const c10::Device& device)
    : impl_(std::make_unique<Impl>(c10::cuda::getStreamFromPool(false, device.index() < 0 ? 0 : device.index()))) {}

GraphedStep::~GraphedStep() = default;

void GraphedStep::capture(const std::function<void()>& step) {
  impl_->graph.reset();
  impl_->graph.emplace();
  // Work queued on the stream before (the last eager step's) is not captured: capture starts at this point.
  impl_->graph->capture_begin();
  try {
    step();
    impl_->graph->capture_end();
  } catch (const std::exception& e) {
    // The stream must leave capture mode before anything else uses it; what was captured is dropped.
    try {
      impl_->graph->capture_end();
    } catch (...) {
    }
    impl_->graph.reset();
    throw Error(std::string("capturing the training step as a CUDA graph failed: ") + e.what() +
                "; train.cuda_graphs = false runs it eagerly");
  }
}

void GraphedStep::replay() {
  if (!impl_->graph) throw Error("CUDA graph: replay() before capture()");
  impl_->graph->replay();
}

void GraphedStep::reset() { impl_->graph.reset(); }

bool GraphedStep::captured() const { return impl_->graph.has_value(); }

#else

// Without CUDA there is nothing to capture: check_cuda_graphs refuses train.cuda_graphs before a GraphedStep is made.
struct GraphedStep::Impl {};

bool GraphedStep::available() { return false; }

GraphedStep::GraphedStep(const c10::Device& device) {
  throw Error("CUDA graphs: this build of fractrain has no CUDA support (device " + device.str() + ")");
}

GraphedStep::~GraphedStep() = default;
void GraphedStep::capture(const std::function<void()>&) { throw Error("CUDA graphs: no CUDA support"); }
void GraphedStep::replay() { throw Error("CUDA graphs: no CUDA support"); }
void GraphedStep::reset() {}
bool GraphedStep::captured() const { return false; }

#endif

}  // namespace fractrain
