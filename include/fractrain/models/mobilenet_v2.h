#pragma once
// MobileNetV2 (Sandler et al. 2018), CIFAR variant (DESIGN.md 4.9): a 3x3 stem conv with 32 channels at stride 1
// and the second stage (24 channels) at stride 1 instead of 2, so that 32x32 inputs keep enough resolution;
// otherwise the paper's table of inverted-residual stages (t, c, n, s), a 1x1 conv to 1280 channels, global
// average pooling and a linear classifier. ReLU6 activations, linear bottlenecks.
//
// Precision: the 1x1 convolutions (expansion, projection, the last conv) and the stem run at the plan's
// precision; the depthwise 3x3 convolutions run at fixed FW-8/BW-16 whenever the run is quantized (the paper's
// choice: depthwise layers are few MACs and sensitive to low precision) and FP32 in an FP32 run. The last 1x1
// conv (320 -> 1280) lies outside the inverted-residual blocks: cost reports count it with the head, not with
// the blocks (LayerRole::Head).

#include "fractrain/models/gateable_block.h"
#include "fractrain/models/quantized_model.h"
#include "fractrain/nn/batch_norm.h"
#include "fractrain/nn/qconv2d.h"
#include "fractrain/nn/qlinear.h"

namespace fractrain {

// The inverted-residual block: 1x1 expansion (absent when the expansion is 1), 3x3 depthwise conv, 1x1 linear
// projection; an identity residual when the stride is 1 and the channel count does not change.
class InvertedResidual : public torch::nn::Module, public GateableBlock {
 public:
  InvertedResidual(int64_t in_channels, int64_t out_channels, int64_t stride, int64_t expansion);
  at::Tensor forward(const at::Tensor& x, const PrecisionPlan& plan);
  bool has_residual() const { return residual_; }

  // GateableBlock: the expansion and projection convs run at the option, the depthwise conv at its fixed
  // precision (FW-8/BW-16, declared in the constructor) whatever the option; the shortcut is the identity
  // (residual blocks) or none.
  at::Tensor residual(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                      const InputHook& input_hook = nullptr) override;
  at::Tensor shortcut(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                      const InputHook& input_hook = nullptr) override;
  // branch + shortcut (linear bottleneck: no activation), or the branch alone.
  at::Tensor combine(const at::Tensor& branch, const at::Tensor& shortcut) const override;
  bool can_skip() const override { return residual_; }
  std::vector<std::shared_ptr<QuantizedLayer>> layers() const override;
  int64_t macs_per_sample(int64_t height, int64_t width) const override;
  int64_t fixed_precision_macs_per_sample(int64_t height, int64_t width) const override;

 private:
  bool residual_;
  std::shared_ptr<QConv2d> expand_, depthwise_, project_;  // expand_ is null when the expansion is 1
  std::shared_ptr<SyncBatchNorm2d> expand_bn_, depthwise_bn_, project_bn_;
};

class MobileNetV2 : public QuantizedModel {
 public:
  explicit MobileNetV2(const ModelInputSpec& input);
  at::Tensor forward(const at::Tensor& images, const PrecisionPlan& plan) override;

  // The stages (expansion t, channels c, blocks n, stride s of the first block), CIFAR strides.
  struct Stage {
    int64_t t, c, n, s;
  };
  static const std::vector<Stage>& stages();
  static constexpr int64_t kStemChannels = 32, kLastChannels = 1280;

 protected:
  // The gated form shares the network and runs its blocks itself.
  at::Tensor stem_forward(const at::Tensor& images, const PrecisionPlan& plan);
  // The last 1x1 conv, pooling and the classifier.
  at::Tensor head_forward(const at::Tensor& features, const PrecisionPlan& plan);
  struct NamedBlock {
    std::string name;  // "blocks.3"
    std::shared_ptr<InvertedResidual> block;
    int64_t in_channels;
  };
  const std::vector<NamedBlock>& blocks() const { return blocks_; }

 private:
  std::shared_ptr<QConv2d> stem_, last_;
  std::shared_ptr<SyncBatchNorm2d> stem_bn_, last_bn_;
  std::vector<NamedBlock> blocks_;
  std::shared_ptr<QLinear> fc_;
};

}  // namespace fractrain
