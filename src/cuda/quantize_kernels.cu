// The CUDA quantization kernels: each __global__ function only indexes its grid and calls the per-thread body in
// quant/kernel_threads.h, the code a CPU test runs over the whole grid (tests/test_kernel_threads.cpp). Compiled
// with --fmad=false (CMakeLists.txt): see quant/quant_math.h for what equal floats on both devices need.
#include "quantize_kernels.h"

namespace fractrain::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kOptionLanes = quant_math::kOptionGradientLanes;  // threads reducing one (sample, option) pair

__global__ void quantize_rows_kernel(quant_math::QuantizeRowsArgs args, int64_t threads) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < threads; t += stride)
    quant_math::quantize_rows_thread(args, t);
}

// One block per (sample, option): the lanes' double partial sums, added in a fixed tree, so a run repeats
// itself bit for bit.
__global__ void option_gradient_kernel(quant_math::OptionGradientArgs args) {
  __shared__ double partial[kOptionLanes];
  const int64_t row = blockIdx.x / args.options, option = blockIdx.x % args.options;
  partial[threadIdx.x] = quant_math::option_gradient_partial(args, row, option, threadIdx.x, kOptionLanes);
  __syncthreads();
  for (int half = kOptionLanes / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) args.out[row * args.options + option] = static_cast<float>(partial[0]);
}

__global__ void running_range_kernel(quant_math::RunningRangeArgs args) { quant_math::running_range_thread(args); }

}  // namespace

cudaError_t launch_quantize_rows(const quant_math::QuantizeRowsArgs& args, cudaStream_t stream) {
  const int64_t threads = quant_math::quantize_rows_threads(args);
  if (threads == 0) return cudaSuccess;
  // A grid-stride loop: at most 65535 blocks of 256 threads, each thread taking several Philox blocks if needed.
  const int64_t wanted = (threads + kThreads - 1) / kThreads;
  const auto blocks = static_cast<unsigned>(wanted < 65535 ? wanted : 65535);
  quantize_rows_kernel<<<blocks, kThreads, 0, stream>>>(args, threads);
  return cudaGetLastError();
}

cudaError_t launch_option_gradient(const quant_math::OptionGradientArgs& args, cudaStream_t stream) {
  const int64_t pairs = args.rows * args.options;
  if (pairs == 0) return cudaSuccess;
  if (pairs > 0x7fffffff) return cudaErrorInvalidValue;
  option_gradient_kernel<<<static_cast<unsigned>(pairs), kOptionLanes, 0, stream>>>(args);
  return cudaGetLastError();
}

cudaError_t launch_running_range(const quant_math::RunningRangeArgs& args, cudaStream_t stream) {
  running_range_kernel<<<1, 1, 0, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace fractrain::cuda
