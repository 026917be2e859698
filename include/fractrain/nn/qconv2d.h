#pragma once
// A 2-D convolution whose input activations, weights and output gradient are quantized at the precision
// handed to forward(). With all widths 0 it is an ordinary FP32 convolution.
#include "fractrain/nn/quantized_layer.h"

namespace fractrain {

struct QConv2dOptions {
  int64_t in_channels = 0, out_channels = 0, kernel_size = 3, stride = 1, padding = 0, groups = 1;
  bool bias = false;

  // "Same" padding (kernel / 2), no bias: the convolutions of the model zoo.
  static QConv2dOptions same(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t groups = 1) {
    QConv2dOptions o;
    o.in_channels = in;
    o.out_channels = out;
    o.kernel_size = kernel;
    o.stride = stride;
    o.padding = kernel / 2;
    o.groups = groups;
    return o;
  }
};

class QConv2d : public QuantizedLayer {
 public:
  explicit QConv2d(const QConv2dOptions& options);

  LayerKind kind() const override;
  const at::Tensor& weight_tensor() const override { return weight_; }
  const at::Tensor& bias_tensor() const override { return bias_; }
  WeightedLayerGeometry operand_geometry() const override;
  int64_t weight_groups() const override { return options_.groups; }
  const QConv2dOptions& options() const { return options_; }
  at::Tensor& weight() { return weight_; }
  at::Tensor& bias() { return bias_; }
  // Forward MACs of one sample whose input is height x width (padding and stride applied).
  int64_t macs_for_input(int64_t height, int64_t width) const;
  int64_t output_size(int64_t input_size) const;

 protected:
  at::Tensor compute(const at::Tensor& x, const at::Tensor& w) override;
  LayerGradients gradients() const override;
  int64_t macs_per_sample(const at::Tensor& x, const at::Tensor& y) const override;
  std::optional<IntegerShape> integer_shape(const at::Tensor& x) const override;
  bool has_integer_kernel() const override;
  std::string integer_refusal() const override;

 private:
  QConv2dOptions options_;
  at::Tensor weight_, bias_;
};

}  // namespace fractrain
