#pragma once
// Training-mode BatchNorm followed by ReLU, with an optional residual added before the ReLU, as one op with one
// autograd node, on fractrain's per-channel passes over contiguous float32 NCHW (batch_norm_kernels.h).
//
// Why: every BatchNorm of a ResNet is followed by a ReLU, directly or after the shortcut's add, and torch runs
// them as separate ops that each read and write whole activations. Per BatchNorm + ReLU, torch's forward reads the
// input three times (two statistics passes, then normalisation) and writes it twice (normalised, then the ReLU),
// the add reads two and writes one more; its backward forms the ReLU's gradient (two reads, a write) before
// BatchNorm's two passes. Fused: two statistics reads and one pass that normalises, adds and applies the ReLU;
// backward, one pass for the sums with the ReLU's mask recomputed from the input (or read from the output where a
// residual was added) and one for dx. Integer execution makes the convolutions cheap and leaves these passes as
// the largest part of a step, which is why this exists (docs/integer.md).
//
// The same maths as torch::batch_norm, the add and torch::relu in training mode, not the same rounding: the
// statistics are summed in another order (float lanes, then float64) and the normalisation's coefficients come
// from float64. The running statistics follow torch's update (momentum factor, unbiased variance). ReLU's
// gradient is torch's (zero where the ReLU's output is <= 0, NaN passes the gradient).
#include <ATen/ATen.h>

namespace fractrain {

// Whether fused_batch_norm_relu runs for these tensors: float32 contiguous NCHW on the CPU with more than one
// value per channel, a residual (if defined) of the same sizes, type and device, a scale (if defined) float32 [N]
// on the CPU with a residual. Otherwise callers compose torch's ops.
bool fused_batch_norm_relu_applies(const at::Tensor& input, const at::Tensor& residual,
                                   const at::Tensor& scale = {});

// relu(batch_norm(input) * scale + residual) in training mode, scale per sample (DFQ's gated blocks scale their
// branch by 1 - the gate's skip mask); residual or scale undefined: left out. weight and bias may be undefined (no
// affine); running_mean and running_var (float32 [C]) are updated in place with `factor` (torch's momentum)
// unless undefined. Differentiable in input, weight, bias, residual and scale.
at::Tensor fused_batch_norm_relu(const at::Tensor& input, const at::Tensor& residual, const at::Tensor& weight,
                                 const at::Tensor& bias, const at::Tensor& running_mean,
                                 const at::Tensor& running_var, double factor, double eps,
                                 const at::Tensor& scale = {});

}  // namespace fractrain
