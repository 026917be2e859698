#pragma once
// Residual networks of BasicBlocks (He et al. 2016): a stem conv (+ BN, ReLU, optionally max pooling), stages of
// BasicBlocks (the first block of a later stage strides by 2; a projection shortcut, 1x1 conv + BN, wherever
// the shape changes), global average pooling and a linear classifier. Two layouts:
//  - CIFAR (section 4.2 of the paper): depth 6n+2, a 3x3 stem with 16 channels, three stages of n blocks with
//    16/32/64 channels (resnet20, resnet38, resnet74, ...);
//  - ImageNet (section 3.3, Table 1): a 7x7 stride-2 stem with 64 channels and 3x3 stride-2 max pooling, four
//    stages with 64/128/256/512 channels, [2, 2, 2, 2] blocks (resnet18) or [3, 4, 6, 3] (resnet34).
// Any input channel count and image size works.
#include <torch/nn/modules/container/modulelist.h>

#include "fractrain/models/gateable_block.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/nn/batch_norm.h"
#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"

namespace fractrain {

class BasicBlock : public torch::nn::Module, public GateableBlock {
 public:
  BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride);
  // Every layer at the plan's precision for its name.
  at::Tensor forward(const at::Tensor& x, const PrecisionPlan& plan);

  // The pieces a gated execution assembles (GateableBlock), every layer at `precision`.
  // bn2(conv2(relu(bn1(conv1(x))))): the residual branch.
  at::Tensor residual(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                      const InputHook& input_hook = nullptr) override;
  // x, or the projection shortcut_bn(shortcut_conv(x)).
  at::Tensor shortcut(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                      const InputHook& input_hook = nullptr) override;
  // relu(branch + shortcut).
  at::Tensor combine(const at::Tensor& branch, const at::Tensor& shortcut) const override;
  // With bn2's fused kernels on, in training, in one process: relu(scale * bn2(h) + shortcut) in one op.
  bool fuses_combination() const override;
  // conv2(relu(bn1(conv1(x)))).
  at::Tensor residual_before_norm(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                                  const InputHook& input_hook = nullptr) override;
  at::Tensor fused_combine(const at::Tensor& h, const at::Tensor& shortcut, const at::Tensor& scale) override;
  bool can_skip() const override { return !has_projection(); }

  bool has_projection() const { return shortcut_conv_ != nullptr; }
  // The block's quantized layers (conv1, conv2 and the projection if any).
  std::vector<std::shared_ptr<QuantizedLayer>> layers() const override;
  int64_t macs_per_sample(int64_t height, int64_t width) const override;

 private:
  std::shared_ptr<QConv2d> conv1_, conv2_, shortcut_conv_;
  std::shared_ptr<SyncBatchNorm2d> bn1_, bn2_, shortcut_bn_;
};

struct ResNetLayout {
  std::string name;  // the model's name, e.g. "resnet20"
  int64_t stem_kernel = 3, stem_stride = 1, stem_channels = 16;
  bool stem_max_pool = false;  // 3x3, stride 2, padding 1 after the stem
  std::vector<int64_t> widths, blocks;  // per stage
};

// Throws fractrain::Error unless depth = 6n+2 with n >= 1.
ResNetLayout cifar_resnet_layout(int depth);
// Throws fractrain::Error unless depth is 18 or 34.
ResNetLayout imagenet_resnet_layout(int depth);

class ResNet : public QuantizedModel {
 public:
  ResNet(const ResNetLayout& layout, const ModelInputSpec& input);
  at::Tensor forward(const at::Tensor& images, const PrecisionPlan& plan) override;

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
  ResNetLayout layout_;
  std::shared_ptr<QConv2d> stem_;
  std::shared_ptr<SyncBatchNorm2d> stem_bn_;
  std::vector<NamedBlock> blocks_;
  std::shared_ptr<QLinear> fc_;
};

}  // namespace fractrain
