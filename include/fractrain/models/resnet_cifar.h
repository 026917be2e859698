#pragma once
// CIFAR-style ResNet of depth 6n+2 (He et al. 2016, section 4.2): a 3x3 stem conv with 16 channels, three
// stages of n BasicBlocks with 16/32/64 channels (stride 2 at the start of stages 2 and 3), projection
// shortcuts (1x1 conv + BN) where the shape changes, global average pooling and a linear classifier.
// Works for any input channel count and image size.
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>

#include <functional>

#include "fractrain/models/quantized_model.h"
#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"

namespace fractrain {

class BasicBlock : public torch::nn::Module {
 public:
  BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride);
  // Every layer at the plan's precision for its name.
  at::Tensor forward(const at::Tensor& x, const PrecisionPlan& plan);

  // The pieces a gated execution assembles, every layer at `precision`. `input_hook`, when set, is applied to
  // the input of each quantized layer (DFQ attaches the gate's gradient there).
  using InputHook = std::function<at::Tensor(const at::Tensor&)>;
  // bn2(conv2(relu(bn1(conv1(x))))): the residual branch.
  at::Tensor residual(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                      const InputHook& input_hook = nullptr);
  // x, or the projection shortcut_bn(shortcut_conv(x)).
  at::Tensor shortcut(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                      const InputHook& input_hook = nullptr);

  bool has_projection() const { return shortcut_conv_ != nullptr; }
  // The block's quantized layers (conv1, conv2 and the projection if any).
  std::vector<std::shared_ptr<QuantizedLayer>> layers() const;
  int64_t macs_per_sample(int64_t height, int64_t width) const;

 private:
  std::shared_ptr<QConv2d> conv1_, conv2_, shortcut_conv_;
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, shortcut_bn_{nullptr};
};

class ResNetCifar : public QuantizedModel {
 public:
  ResNetCifar(int depth, const ModelInputSpec& input);
  at::Tensor forward(const at::Tensor& images, const PrecisionPlan& plan) override;
  int depth() const { return depth_; }

 protected:
  // The gated form shares the network and runs its blocks itself.
  at::Tensor stem_forward(const at::Tensor& images, const PrecisionPlan& plan);
  at::Tensor head_forward(const at::Tensor& features, const PrecisionPlan& plan);
  struct NamedBlock {
    std::string name;  // "stage2.0"
    std::shared_ptr<BasicBlock> block;
    int64_t in_channels;
  };
  const std::vector<NamedBlock>& blocks() const { return blocks_; }

 private:
  int depth_;
  std::shared_ptr<QConv2d> stem_;
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<NamedBlock> blocks_;
  std::shared_ptr<QLinear> fc_;
};

}  // namespace fractrain
