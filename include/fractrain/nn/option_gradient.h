#pragma once
// How a DFQ gate learns from the task loss in `mixed` execution (DESIGN.md 4.5, docs/dfq.md).
//
// The gated block's quantized layer computes, for sample n, its input quantized at the option d_n the gate
// chose. Mathematically that input is the straight-through mixture  x_q[n] = sum_k mask[n,k] Q_k(x[n])  with
// mask = onehot(d) - p.detach() + p: its value is Q_{d_n}(x[n]) (mask is one-hot in value) and its gradient
// is  d x_q / d mask[n,k] = Q_k(x[n])  and (straight through) d x_q / d x = 1. Computing the K quantized
// copies in the forward pass would cost K passes over every activation, so fractrain applies an identity
// node before the layer instead: forward it returns x; backward it passes the incoming gradient g (the
// layer's input gradient, dL/dx_q) to x unchanged and gives the mask
//     d L / d mask[n,k] = < g[n], Q_k(x[n]) >
// with Q_k quantizing at option k's activation width over the range the layer used (min/max of this batch's
// x). One fused pass over x and g gives all K inner products.
#include <ATen/core/Tensor.h>

#include <vector>

#include "fractrain/quant/fake_quantize.h"
#include "fractrain/quant/range_agreement.h"

namespace fractrain {

// x: the layer input [N, ...]; mask: [N, K] (differentiable); act_bits[k]: option k's activation width (0 =
// FP32, Q_k(x) = x). Returns x (as a new autograd node) whose backward also fills mask's gradient. Q_k uses the
// range of x, agreed across data-parallel ranks by `agreement` (null: x's own).
at::Tensor attach_option_gradient(const at::Tensor& x, const at::Tensor& mask, std::vector<int> act_bits,
                                  bool snap_zero_point, RangeAgreement* agreement = nullptr);

// DFQ's masked execution (models/gated_block.h), where nothing returns to the host: the same, with Q_k over the
// range of the running samples (`runs`, float [N] of 1 and 0) kept in a tensor on x's device, the widths
// `option_bits` an int32 tensor [K] there, and the inner products on the device path
// (device_quant::option_inner_products). Samples that skip receive a zero gradient, hence a zero mask gradient.
at::Tensor attach_option_gradient_running(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& option_bits,
                                          bool snap_zero_point, const at::Tensor& runs);
// out[n, k] = sum_i g[n, i] * Q_k(x[n, i]) over the flattened sample, Q_k with act_bits[k] over `range`.
// A fused CPU kernel for float tensors; a tensor-op version elsewhere (and as the tests' reference). On CPUs with
// AVX-512 the kernel's vector form (no division), equal to its portable form bit for bit (tests).
enum class OptionProductKernel { Fastest, Portable };
at::Tensor option_inner_products(const at::Tensor& x, const at::Tensor& g, const std::vector<int>& act_bits,
                                 QuantRange range, bool snap_zero_point,
                                 OptionProductKernel implementation = OptionProductKernel::Fastest);
namespace reference {
at::Tensor option_inner_products(const at::Tensor& x, const at::Tensor& g, const std::vector<int>& act_bits,
                                 QuantRange range, bool snap_zero_point);
}

}  // namespace fractrain
