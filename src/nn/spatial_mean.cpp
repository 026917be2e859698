#include "fractrain/nn/spatial_mean.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class SpatialMean : public torch::autograd::Function<SpatialMean> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    ctx->saved_data["sizes"] = x.sizes().vec();
    return x.mean({2, 3});
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    const at::Tensor& g = grads[0];
    if (!g.defined()) return {at::Tensor()};
    // The division by the integer H W as LibTorch's mean backward does it (a scalar of the gradient's type).
    return {(g / (sizes[2] * sizes[3])).view({sizes[0], sizes[1], 1, 1}).expand(sizes)};
  }
};

}  // namespace

at::Tensor spatial_mean(const at::Tensor& x) {
  if (x.dim() != 4) throw Error("spatial_mean: expected [N, C, H, W], got " + std::to_string(x.dim()) + " dimensions");
  return SpatialMean::apply(x);
}

}  // namespace fractrain
