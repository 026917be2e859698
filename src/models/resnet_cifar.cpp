#include "fractrain/models/resnet_cifar.h"

#include <torch/torch.h>

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

std::shared_ptr<QConv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  QConv2dOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel_size = kernel;
  o.stride = stride;
  o.padding = kernel / 2;
  return std::make_shared<QConv2d>(o);
}

}  // namespace

BasicBlock::BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride) {
  conv1_ = register_module("conv1", conv(in_channels, out_channels, 3, stride));
  bn1_ = register_module("bn1", torch::nn::BatchNorm2d(out_channels));
  conv2_ = register_module("conv2", conv(out_channels, out_channels, 3, 1));
  bn2_ = register_module("bn2", torch::nn::BatchNorm2d(out_channels));
  if (stride != 1 || in_channels != out_channels) {
    shortcut_conv_ = register_module("shortcut_conv", conv(in_channels, out_channels, 1, stride));
    shortcut_bn_ = register_module("shortcut_bn", torch::nn::BatchNorm2d(out_channels));
  }
}

at::Tensor BasicBlock::forward(const at::Tensor& x, const PrecisionPlan& plan) {
  at::Tensor out = torch::relu(bn1_->forward(conv1_->forward(x, plan)));
  out = bn2_->forward(conv2_->forward(out, plan));
  at::Tensor shortcut = shortcut_conv_ ? shortcut_bn_->forward(shortcut_conv_->forward(x, plan)) : x;
  return torch::relu(out + shortcut);
}

ResNetCifar::ResNetCifar(int depth, const ModelInputSpec& input)
    : QuantizedModel("resnet" + std::to_string(depth)), depth_(depth) {
  if (depth < 8 || (depth - 2) % 6 != 0)
    throw Error("CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 38, 74, 110, 164, ...), got " +
                std::to_string(depth));
  if (input.channels <= 0 || input.height <= 0 || input.width <= 0 || input.num_classes < 2)
    throw Error("ResNet: invalid input spec (channels " + std::to_string(input.channels) + ", classes " +
                std::to_string(input.num_classes) + ")");
  const int blocks_per_stage = (depth - 2) / 6;
  stem_ = register_module("stem", conv(input.channels, 16, 3, 1));
  stem_bn_ = register_module("stem_bn", torch::nn::BatchNorm2d(16));
  const int64_t widths[3] = {16, 32, 64};
  int64_t in_channels = 16;
  for (int s = 0; s < 3; ++s) {
    auto list = register_module("stage" + std::to_string(s + 1), torch::nn::ModuleList());
    std::vector<std::shared_ptr<BasicBlock>> blocks;
    for (int b = 0; b < blocks_per_stage; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      auto block = std::make_shared<BasicBlock>(in_channels, widths[s], stride);
      list->push_back(block);
      blocks.push_back(block);
      in_channels = widths[s];
    }
    stages_.push_back(std::move(blocks));
  }
  fc_ = register_module("fc", std::make_shared<QLinear>(64, input.num_classes));
  finalize_layers("stem", "fc");
}

at::Tensor ResNetCifar::forward(const at::Tensor& images, const PrecisionPlan& plan) {
  at::Tensor x = torch::relu(stem_bn_->forward(stem_->forward(images, plan)));
  for (auto& stage : stages_)
    for (auto& block : stage) x = block->forward(x, plan);
  x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  return fc_->forward(x, plan);
}

}  // namespace fractrain
