#pragma once
// The per-channel passes of synchronised BatchNorm (batch_norm.cpp) over a contiguous NCHW float buffer, seen
// as [samples][channels][plane] with plane = H * W.
//
// Why not torch's ops: in LibTorch 1.13 on one thread, at::var_mean over dims {0, 2, 3} of a 64 x 16 x 28 x 28
// input takes 7.2 ms and torch's training BatchNorm forward 2.7 ms, while one pass over the same 3.2 MB takes
// about 0.15 ms; the three broadcast ops that formed dx took 1.4 ms. Synchronised BatchNorm runs after every
// convolution of a data-parallel ResNet, so these passes were a third of a rank's step.
//
// Each channel is summed plane by plane: 16 float lanes within a plane (at most a few hundred values per lane),
// then each plane's total added in float64. The order is fixed by the shape alone, so results do not depend on
// the thread count (channels are split between threads, never a channel's sums).
#include <cstdint>

#include "fractrain/quant/quantize_kernel.h"  // kernel::MinMax

namespace fractrain::batch_norm_kernel {

struct NchwShape {
  int64_t samples = 0, channels = 0, plane = 0;
};

// The shape of a 4-D NCHW tensor (any type with size(dim); this header stays free of ATen).
template <class Tensor>
NchwShape nchw_shape(const Tensor& x) {
  return {x.size(0), x.size(1), x.size(2) * x.size(3)};
}

// mean[c] = the mean of channel c's samples x plane values; m2[c] = the sum of their squared deviations from
// it (two passes, so no cancellation). A shape with no values gives 0 for both.
void channel_moments(const float* x, NchwShape shape, double* mean, double* m2);

// sum_dy[c] = sum of dy over channel c; sum_dy_centered[c] = sum of dy * (x - mean[c]) (mean rounded to float
// before the subtraction, as the values are float).
void gradient_sums(const float* dy, const float* x, NchwShape shape, const double* mean, double* sum_dy,
                   double* sum_dy_centered);

// out = a[c] * dy + b[c] * x + k[c], elementwise in float, in that order: BatchNorm's dx in one pass.
void channel_affine_combination(const float* dy, const float* x, NchwShape shape, const float* a, const float* b,
                                const float* k, float* out);

// The fused BatchNorm + ReLU of one process (fused_batch_norm.h). Normalisation in torch's form, x * alpha[c] +
// beta[c] in float (the library compiles without FMA contraction, so a value computed twice rounds the same).

// `written` (may be null) receives the extremes of every value written to `out`, as kernel::min_max would find them
// (taken plane by plane right after each plane is written; for the quantizer's range, range_memo.h).

// out = relu(x * alpha[c] + beta[c] (+ residual)), residual may be null; relu(NaN) = NaN as torch's. With a
// per-sample scale (then a residual too): out = relu((x * alpha[c] + beta[c]) * scale[n] + residual).
void channel_affine_relu(const float* x, const float* residual, const float* scale, NchwShape shape,
                         const float* alpha, const float* beta, float* out, kernel::MinMax* written = nullptr);

// With g = dy where x * alpha[c] + beta[c] > 0 (recomputed as the forward computed it), else 0 (torch's ReLU
// gradient): sum_g[c] = sum of g, sum_g_centered[c] = sum of g * (x - mean[c]) (mean rounded to float).
void relu_gradient_sums(const float* dy, const float* x, NchwShape shape, const float* alpha, const float* beta,
                        const double* mean, double* sum_g, double* sum_g_centered);

// out = a[c] * g + b[c] * x + k[c] with g as in relu_gradient_sums: the fused layer's dx in one pass.
void relu_affine_combination(const float* dy, const float* x, NchwShape shape, const float* alpha, const float* beta,
                             const float* a, const float* b, const float* k, float* out,
                             kernel::MinMax* written = nullptr);

// A per-sample scale of the normalised values before the residual add (all pointers may be null): `values`
// [samples]; `gradient_terms` [samples][channels] receives the sum over the plane of g * (x * alpha[c] + beta[c]),
// the scale's gradient once summed over channels.
struct OutputScale {
  const float* values = nullptr;
  const float* alpha = nullptr;
  const float* beta = nullptr;
  double* gradient_terms = nullptr;
};

// The residual form: g = dy where the output y > 0, else 0, written to `g` (the residual's gradient), with the same
// sums as relu_gradient_sums of g * scale[n] (the gradient behind the scale).
void masked_gradient_sums(const float* dy, const float* y, const float* x, NchwShape shape, const double* mean,
                          const OutputScale& scale, float* g, double* sum_g, double* sum_g_centered);

// out = (a[c] * scale[n]) * dy + b[c] * x + k[c]: channel_affine_combination for a scaled BatchNorm output.
void scaled_affine_combination(const float* dy, const float* scale, const float* x, NchwShape shape, const float* a,
                               const float* b, const float* k, float* out, kernel::MinMax* written = nullptr);

}  // namespace fractrain::batch_norm_kernel
