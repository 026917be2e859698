#pragma once
// FRACTRAIN_HD marks a function that CUDA kernels call on the device and CPU code calls on the host: the one
// definition of an arithmetic both devices must agree on (quant/quant_math.h, random/philox_block.h). Under nvcc
// it is __host__ __device__; elsewhere a plain inline function.
#if defined(__CUDACC__)
#define FRACTRAIN_HD __host__ __device__ __forceinline__
#else
#define FRACTRAIN_HD inline
#endif
