#include "fractrain/models/mobilenet_v2.h"

#include <torch/torch.h>

#include "fractrain/util/error.h"

namespace fractrain {
namespace {

std::shared_ptr<QConv2d> conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t groups = 1) {
  return std::make_shared<QConv2d>(QConv2dOptions::same(in, out, kernel, stride, groups));
}

at::Tensor clamp_relu6(const at::Tensor& x) { return torch::hardtanh(x, 0.0, 6.0); }

}  // namespace

InvertedResidual::InvertedResidual(int64_t in_channels, int64_t out_channels, int64_t stride, int64_t expansion)
    : residual_(stride == 1 && in_channels == out_channels) {
  const int64_t hidden = in_channels * expansion;
  if (expansion != 1) {
    expand_ = register_module("expand", conv(in_channels, hidden, 1));
    expand_bn_ = register_module("expand_bn", std::make_shared<SyncBatchNorm2d>(hidden));
  }
  depthwise_ = register_module("depthwise", conv(hidden, hidden, 3, stride, hidden));
  depthwise_->fix_precision(Precision::fw_bw(8, 16));  // the paper fixes depthwise layers at FW-8/BW-16
  depthwise_bn_ = register_module("depthwise_bn", std::make_shared<SyncBatchNorm2d>(hidden));
  project_ = register_module("project", conv(hidden, out_channels, 1));
  project_bn_ = register_module("project_bn", std::make_shared<SyncBatchNorm2d>(out_channels));
}

at::Tensor InvertedResidual::forward(const at::Tensor& x, const PrecisionPlan& plan) {
  at::Tensor h = expand_ ? clamp_relu6(expand_bn_->forward(expand_->forward(x, plan))) : x;
  h = clamp_relu6(depthwise_bn_->forward(depthwise_->forward(h, plan)));
  h = project_bn_->forward(project_->forward(h, plan));  // linear bottleneck: no activation
  return residual_ ? x + h : h;
}

at::Tensor InvertedResidual::residual(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                                      const InputHook& input_hook) {
  const at::Tensor& runs = precision.running_samples();  // masked execution: statistics of the running samples
  at::Tensor h = expand_ ? clamp_relu6(expand_bn_->forward(
                               expand_->forward(hooked(input_hook, x), precision, noise_step), runs))
                         : x;
  // The depthwise conv's input is quantized at 8 bits whatever the option: no option gradient there.
  h = clamp_relu6(depthwise_bn_->forward(
      depthwise_->forward(h, layer_precision(*depthwise_, precision), noise_step), runs));
  return project_bn_->forward(project_->forward(hooked(input_hook, h), precision, noise_step), runs);
}

at::Tensor InvertedResidual::shortcut(const at::Tensor& x, const LayerPrecision&, uint64_t, const InputHook&) {
  return residual_ ? x : at::Tensor();
}

at::Tensor InvertedResidual::combine(const at::Tensor& branch, const at::Tensor& shortcut) const {
  return shortcut.defined() ? branch + shortcut : branch;
}

std::vector<std::shared_ptr<QuantizedLayer>> InvertedResidual::layers() const {
  std::vector<std::shared_ptr<QuantizedLayer>> out;
  if (expand_) out.push_back(expand_);
  out.push_back(depthwise_);
  out.push_back(project_);
  return out;
}

int64_t InvertedResidual::macs_per_sample(int64_t height, int64_t width) const {
  // The 1x1 expansion keeps the size; the depthwise conv strides; the projection runs at its output size.
  const int64_t h = depthwise_->output_size(height), w = depthwise_->output_size(width);
  int64_t macs = fixed_precision_macs_per_sample(height, width) + project_->macs_for_input(h, w);
  if (expand_) macs += expand_->macs_for_input(height, width);
  return macs;
}

int64_t InvertedResidual::fixed_precision_macs_per_sample(int64_t height, int64_t width) const {
  return depthwise_->macs_for_input(height, width);
}

const std::vector<MobileNetV2::Stage>& MobileNetV2::stages() {
  // Sandler et al. 2018, Table 2; the second stage strides 1 instead of 2 for CIFAR.
  static const std::vector<Stage> s = {{1, 16, 1, 1},  {6, 24, 2, 1},  {6, 32, 3, 2},  {6, 64, 4, 2},
                                       {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
  return s;
}

MobileNetV2::MobileNetV2(const ModelInputSpec& input) : QuantizedModel("mobilenetv2") {
  if (input.channels <= 0 || input.height <= 0 || input.width <= 0 || input.num_classes < 2)
    throw Error("MobileNetV2: invalid input spec (channels " + std::to_string(input.channels) + ", classes " +
                std::to_string(input.num_classes) + ")");
  stem_ = register_module("stem", conv(input.channels, kStemChannels, 3));
  stem_bn_ = register_module("stem_bn", std::make_shared<SyncBatchNorm2d>(kStemChannels));
  auto list = register_module("blocks", torch::nn::ModuleList());
  int64_t in_channels = kStemChannels;
  for (const Stage& stage : stages()) {
    for (int64_t i = 0; i < stage.n; ++i) {
      auto block = std::make_shared<InvertedResidual>(in_channels, stage.c, i == 0 ? stage.s : 1, stage.t);
      list->push_back(block);
      blocks_.push_back({"blocks." + std::to_string(blocks_.size()), block, in_channels});
      in_channels = stage.c;
    }
  }
  last_ = register_module("last", conv(in_channels, kLastChannels, 1));
  last_bn_ = register_module("last_bn", std::make_shared<SyncBatchNorm2d>(kLastChannels));
  fc_ = register_module("fc", std::make_shared<QLinear>(kLastChannels, input.num_classes));
  finalize_layers("stem", "fc", {"last"});
}

at::Tensor MobileNetV2::stem_forward(const at::Tensor& images, const PrecisionPlan& plan) {
  return clamp_relu6(stem_bn_->forward(stem_->forward(images, plan)));
}

at::Tensor MobileNetV2::head_forward(const at::Tensor& features, const PrecisionPlan& plan) {
  const at::Tensor x = clamp_relu6(last_bn_->forward(last_->forward(features, plan)));
  return fc_->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1), plan);
}

at::Tensor MobileNetV2::forward(const at::Tensor& images, const PrecisionPlan& plan) {
  at::Tensor x = stem_forward(images, plan);
  for (auto& b : blocks_) x = b.block->forward(x, plan);
  return head_forward(x, plan);
}


}  // namespace fractrain
