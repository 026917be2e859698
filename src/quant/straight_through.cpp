#include "fractrain/quant/straight_through.h"

#include <torch/torch.h>

namespace fractrain {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct StraightThroughFunction : public torch::autograd::Function<StraightThroughFunction> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& /*x*/, const at::Tensor& quantized) {
    return quantized;
  }
  static tensor_list backward(AutogradContext*, tensor_list grad) { return {grad[0], at::Tensor()}; }
};

struct GradientQuantizeFunction : public torch::autograd::Function<GradientQuantizeFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y, const GradientQuantization* spec) {
    // Copy what backward needs: the spec object lives only for the forward call.
    ctx->saved_data["bits"] = static_cast<int64_t>(spec->bits);
    ctx->saved_data["row_bits"] = std::vector<int64_t>(spec->row_bits.begin(), spec->row_bits.end());
    ctx->saved_data["key"] = static_cast<int64_t>(spec->noise.key);
    ctx->saved_data["stream"] = static_cast<int64_t>(spec->noise.stream);
    ctx->saved_data["snap"] = spec->snap_zero_point;
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad) {
    QuantizeOptions options;
    options.rounding = Rounding::Stochastic;
    options.noise.key = static_cast<uint64_t>(ctx->saved_data["key"].toInt());
    options.noise.stream = static_cast<uint64_t>(ctx->saved_data["stream"].toInt());
    options.snap_zero_point = ctx->saved_data["snap"].toBool();
    const at::Tensor& g = grad[0];
    const QuantRange range = tensor_range(g);
    auto row_bits_list = ctx->saved_data["row_bits"].toIntVector();
    at::Tensor quantized;
    if (row_bits_list.empty()) {
      quantized = fake_quantize(g, static_cast<int>(ctx->saved_data["bits"].toInt()), range, options);
    } else {
      std::vector<int> row_bits(row_bits_list.begin(), row_bits_list.end());
      quantized = fake_quantize_rows(g, row_bits, range, options);
    }
    return {quantized, at::Tensor()};
  }
};

}  // namespace

at::Tensor straight_through(const at::Tensor& x, const at::Tensor& quantized) {
  if (!x.requires_grad()) return quantized;
  return StraightThroughFunction::apply(x, quantized);
}

at::Tensor quantize_gradient_in_backward(const at::Tensor& y, const GradientQuantization& spec) {
  if (!y.requires_grad()) return y;
  return GradientQuantizeFunction::apply(y, &spec);
}

}  // namespace fractrain
