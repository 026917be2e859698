#pragma once
// The gradients of a quantized layer's float op, which each layer kind supplies for the backward pass.
#include <ATen/core/Tensor.h>

#include <array>
#include <functional>

namespace fractrain {

// Gradients of y = op(x, w) + bias at (x, w) for the output gradient g, as {dx, dw, dbias}. `needed` says which
// to compute; the others may be left undefined (dbias always is for a layer without bias).
using LayerGradients = std::function<std::array<at::Tensor, 3>(const at::Tensor& g, const at::Tensor& x,
                                                               const at::Tensor& w, std::array<bool, 3> needed)>;

}  // namespace fractrain
