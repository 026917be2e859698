#pragma once
// A linear layer whose input activations, weights and output gradient are quantized at the precision
// handed to forward(). Inputs [N, in] or [N, T, in] (T tokens per sample).
#include "fractrain/nn/quantized_layer.h"

namespace fractrain {

class QLinear : public QuantizedLayer {
 public:
  QLinear(int64_t in_features, int64_t out_features, bool bias = true);

  LayerKind kind() const override { return LayerKind::Linear; }
  const at::Tensor& weight_tensor() const override { return weight_; }
  const at::Tensor& bias_tensor() const override { return bias_; }
  WeightedLayerGeometry operand_geometry() const override;
  at::Tensor& weight() { return weight_; }
  at::Tensor& bias() { return bias_; }
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

 protected:
  at::Tensor compute(const at::Tensor& x, const at::Tensor& w) override;
  LayerGradients gradients() const override;
  int64_t macs_per_sample(const at::Tensor& x, const at::Tensor& y) const override;
  std::optional<IntegerShape> integer_shape(const at::Tensor& x) const override;
  bool has_integer_kernel() const override;

 private:
  int64_t in_features_, out_features_;
  at::Tensor weight_, bias_;
};

}  // namespace fractrain
