#include "fractrain/models/resnet.h"

#include <torch/torch.h>

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

std::shared_ptr<QConv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return std::make_shared<QConv2d>(QConv2dOptions::same(in, out, kernel, stride));
}

}  // namespace

BasicBlock::BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride) {
  conv1_ = register_module("conv1", conv(in_channels, out_channels, 3, stride));
  bn1_ = register_module("bn1", std::make_shared<SyncBatchNorm2d>(out_channels));
  conv2_ = register_module("conv2", conv(out_channels, out_channels, 3, 1));
  bn2_ = register_module("bn2", std::make_shared<SyncBatchNorm2d>(out_channels));
  if (stride != 1 || in_channels != out_channels) {
    shortcut_conv_ = register_module("shortcut_conv", conv(in_channels, out_channels, 1, stride));
    shortcut_bn_ = register_module("shortcut_bn", std::make_shared<SyncBatchNorm2d>(out_channels));
  }
}

at::Tensor BasicBlock::forward(const at::Tensor& x, const PrecisionPlan& plan) {
  const at::Tensor h = conv2_->forward(bn1_->forward_relu(conv1_->forward(x, plan)), plan);
  const at::Tensor shortcut = shortcut_conv_ ? shortcut_bn_->forward(shortcut_conv_->forward(x, plan)) : x;
  return bn2_->forward_relu(h, shortcut);
}

at::Tensor BasicBlock::residual(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                                const InputHook& input_hook) {
  // Masked execution: statistics of the running samples.
  return bn2_->forward(residual_before_norm(x, precision, noise_step, input_hook), precision.running_samples());
}

at::Tensor BasicBlock::residual_before_norm(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                                            const InputHook& input_hook) {
  const at::Tensor& runs = precision.running_samples();
  const at::Tensor h = conv1_->forward(hooked(input_hook, x), precision, noise_step);
  const at::Tensor out = runs.defined() ? torch::relu(bn1_->forward(h, runs)) : bn1_->forward_relu(h);
  return conv2_->forward(hooked(input_hook, out), precision, noise_step);
}

bool BasicBlock::fuses_combination() const {
  const auto& communicator = bn2_->communicator();
  return bn2_->fused_kernels() && bn2_->is_training() && !(communicator && communicator->distributed());
}

at::Tensor BasicBlock::fused_combine(const at::Tensor& h, const at::Tensor& shortcut, const at::Tensor& scale) {
  return bn2_->forward_relu(h, shortcut, scale);
}

at::Tensor BasicBlock::shortcut(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                                const InputHook& input_hook) {
  if (!shortcut_conv_) return x;
  return shortcut_bn_->forward(shortcut_conv_->forward(hooked(input_hook, x), precision, noise_step),
                              precision.running_samples());
}

at::Tensor BasicBlock::combine(const at::Tensor& branch, const at::Tensor& shortcut) const {
  return torch::relu(branch + shortcut);
}

std::vector<std::shared_ptr<QuantizedLayer>> BasicBlock::layers() const {
  std::vector<std::shared_ptr<QuantizedLayer>> out = {conv1_, conv2_};
  if (shortcut_conv_) out.push_back(shortcut_conv_);
  return out;
}

int64_t BasicBlock::macs_per_sample(int64_t height, int64_t width) const {
  const int64_t h = conv1_->output_size(height), w = conv1_->output_size(width);
  int64_t macs = conv1_->macs_for_input(height, width) + conv2_->macs_for_input(h, w);
  if (shortcut_conv_) macs += shortcut_conv_->macs_for_input(height, width);
  return macs;
}

ResNetLayout cifar_resnet_layout(int depth) {
  if (depth < 8 || (depth - 2) % 6 != 0)
    throw Error("CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 38, 74, 110, 164, ...), got " +
                std::to_string(depth));
  const int64_t n = (depth - 2) / 6;
  ResNetLayout l;
  l.name = "resnet" + std::to_string(depth);
  l.widths = {16, 32, 64};
  l.blocks = {n, n, n};
  return l;
}

ResNetLayout imagenet_resnet_layout(int depth) {
  ResNetLayout l;
  l.name = "resnet" + std::to_string(depth);
  l.stem_kernel = 7;
  l.stem_stride = 2;
  l.stem_channels = 64;
  l.stem_max_pool = true;
  l.widths = {64, 128, 256, 512};
  if (depth == 18)
    l.blocks = {2, 2, 2, 2};
  else if (depth == 34)
    l.blocks = {3, 4, 6, 3};
  else
    throw Error("ImageNet ResNet depth must be 18 or 34 (BasicBlocks), got " + std::to_string(depth));
  return l;
}

ResNet::ResNet(const ResNetLayout& layout, const ModelInputSpec& input)
    : QuantizedModel(layout.name), layout_(layout) {
  if (input.channels <= 0 || input.height <= 0 || input.width <= 0 || input.num_classes < 2)
    throw Error(layout.name + ": invalid input spec (channels " + std::to_string(input.channels) + ", classes " +
                std::to_string(input.num_classes) + ")");
  stem_ = register_module("stem", conv(input.channels, layout.stem_channels, layout.stem_kernel, layout.stem_stride));
  stem_bn_ = register_module("stem_bn", std::make_shared<SyncBatchNorm2d>(layout.stem_channels));
  int64_t in_channels = layout.stem_channels;
  for (size_t s = 0; s < layout.widths.size(); ++s) {
    const std::string stage = "stage" + std::to_string(s + 1);
    auto list = register_module(stage, torch::nn::ModuleList());
    for (int64_t b = 0; b < layout.blocks[s]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      auto block = std::make_shared<BasicBlock>(in_channels, layout.widths[s], stride);
      list->push_back(block);
      blocks_.push_back({stage + "." + std::to_string(b), block, in_channels});
      in_channels = layout.widths[s];
    }
  }
  fc_ = register_module("fc", std::make_shared<QLinear>(in_channels, input.num_classes));
  finalize_layers("stem", "fc");
}

at::Tensor ResNet::stem_forward(const at::Tensor& images, const PrecisionPlan& plan) {
  at::Tensor x = stem_bn_->forward_relu(stem_->forward(images, plan));
  return layout_.stem_max_pool ? torch::max_pool2d(x, 3, 2, 1) : x;
}

at::Tensor ResNet::head_forward(const at::Tensor& features, const PrecisionPlan& plan) {
  return fc_->forward(torch::adaptive_avg_pool2d(features, {1, 1}).flatten(1), plan);
}

at::Tensor ResNet::forward(const at::Tensor& images, const PrecisionPlan& plan) {
  at::Tensor x = stem_forward(images, plan);
  for (auto& b : blocks_) x = b.block->forward(x, plan);
  return head_forward(x, plan);
}

}  // namespace fractrain
