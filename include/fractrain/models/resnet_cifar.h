#pragma once
// CIFAR-style ResNet of depth 6n+2 (He et al. 2016, section 4.2): a 3x3 stem conv with 16 channels, three
// stages of n BasicBlocks with 16/32/64 channels (stride 2 at the start of stages 2 and 3), projection
// shortcuts (1x1 conv + BN) where the shape changes, global average pooling and a linear classifier.
// Works for any input channel count and image size.
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>

#include "fractrain/models/quantized_model.h"
#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"

namespace fractrain {

class BasicBlock : public torch::nn::Module {
 public:
  BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride);
  at::Tensor forward(const at::Tensor& x, const PrecisionPlan& plan);

 private:
  std::shared_ptr<QConv2d> conv1_, conv2_, shortcut_conv_;
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, shortcut_bn_{nullptr};
};

class ResNetCifar : public QuantizedModel {
 public:
  ResNetCifar(int depth, const ModelInputSpec& input);
  at::Tensor forward(const at::Tensor& images, const PrecisionPlan& plan) override;
  int depth() const { return depth_; }

 private:
  int depth_;
  std::shared_ptr<QConv2d> stem_;
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<std::vector<std::shared_ptr<BasicBlock>>> stages_;
  std::shared_ptr<QLinear> fc_;
};

}  // namespace fractrain
