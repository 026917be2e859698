#pragma once
// Launchers of the CUDA quantization kernels. Plain arguments only (the POD argument structs of
// quant/kernel_threads.h and a stream): this header is shared by nvcc (quantize_kernels.cu) and the g++ host glue
// of a CUDA build, and no LibTorch or standard-library type crosses it. Each launcher returns the launch's
// cudaGetLastError(): checked in the runtime that launched the kernel, whichever one the caller links.
#include <cuda_runtime_api.h>

#include "fractrain/quant/kernel_threads.h"

namespace fractrain::cuda {

cudaError_t launch_quantize_rows(const quant_math::QuantizeRowsArgs& args, cudaStream_t stream);
cudaError_t launch_option_gradient(const quant_math::OptionGradientArgs& args, cudaStream_t stream);
cudaError_t launch_running_range(const quant_math::RunningRangeArgs& args, cudaStream_t stream);

}  // namespace fractrain::cuda
