#pragma once
// Integer execution of QMatmul (internal to it; precision.execution = integer): the backward node that forms the
// gradients of both operands from the codes (integer/integer_matmul.h), or, for a gradient without 1..8-bit codes,
// on the simulated path (logged as a fallback). The left operand's gradient is logged as the error backward, the
// right operand's (K or V, in a weight's place) as the weight gradient.
#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>

#include "fractrain/integer/integer_matmul.h"
#include "fractrain/nn/execution_log.h"
#include "fractrain/quant/straight_through.h"

namespace fractrain {

struct IntegerMatmulGraph {
  integer::MatrixCodes left, right;  // the forward's codes, [B, M, K] and [B, K, N]
  QuantRange left_range, right_range;
  std::optional<GradientQuantization> gradient;  // none: the gradient is not quantized
  std::shared_ptr<ExecutionLog> log;
};

// y = the product of a and b computed from graph's codes; the node takes y's gradient to a's and b's.
at::Tensor attach_integer_matmul_backward(at::Tensor y, const at::Tensor& a, const at::Tensor& b,
                                          IntegerMatmulGraph graph);

}  // namespace fractrain
