#pragma once
// A CIFAR ResNet-(6n+2) of plain LibTorch modules in fractrain's layout (3x3 stem of 16 channels; stages of 16, 32
// and 64 channels of basic blocks, a 1x1 projection shortcut with BatchNorm where the shape changes; no
// convolution biases; global average pool; linear classifier). The FP32 baseline that the GPU target compares
// fractrain's FP32 step with (bench_step_time --plain 1): same arithmetic, none of fractrain's machinery.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "fractrain/util/error.h"

namespace fractrain::bench {

class PlainBlockImpl : public torch::nn::Module {
 public:
  PlainBlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1_(register_module("conv1", conv(in, out, 3, stride))),
        bn1_(register_module("bn1", torch::nn::BatchNorm2d(out))),
        conv2_(register_module("conv2", conv(out, out, 3, 1))),
        bn2_(register_module("bn2", torch::nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      shortcut_conv_ = register_module("shortcut_conv", conv(in, out, 1, stride));
      shortcut_bn_ = register_module("shortcut_bn", torch::nn::BatchNorm2d(out));
    }
  }

  at::Tensor forward(const at::Tensor& x) {
    at::Tensor out = torch::relu(bn1_(conv1_(x)));
    out = bn2_(conv2_(out));
    const at::Tensor shortcut = shortcut_conv_ ? shortcut_bn_(shortcut_conv_(x)) : x;
    return torch::relu(out + shortcut);
  }

  static torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
    return torch::nn::Conv2d(
        torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
  }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Conv2d shortcut_conv_{nullptr};
  torch::nn::BatchNorm2d shortcut_bn_{nullptr};
};
TORCH_MODULE(PlainBlock);

class PlainResNetImpl : public torch::nn::Module {
 public:
  PlainResNetImpl(int depth, int64_t channels, int64_t classes) {
    if (depth < 8 || (depth - 2) % 6 != 0)
      throw Error("plain ResNet: depth must be 6n+2, got " + std::to_string(depth));
    stem_ = register_module("stem", PlainBlockImpl::conv(channels, 16, 3, 1));
    stem_bn_ = register_module("stem_bn", torch::nn::BatchNorm2d(16));
    blocks_ = register_module("blocks", torch::nn::Sequential());
    int64_t in = 16;
    for (int64_t width : {16, 32, 64})
      for (int b = 0; b < (depth - 2) / 6; ++b) {
        blocks_->push_back(PlainBlock(in, width, b == 0 && width != 16 ? 2 : 1));
        in = width;
      }
    fc_ = register_module("fc", torch::nn::Linear(in, classes));
  }

  at::Tensor forward(const at::Tensor& images) {
    const at::Tensor features = blocks_->forward(torch::relu(stem_bn_(stem_(images))));
    return fc_(torch::adaptive_avg_pool2d(features, {1, 1}).flatten(1));
  }

 private:
  torch::nn::Conv2d stem_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  torch::nn::Sequential blocks_{nullptr};
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(PlainResNet);

}  // namespace fractrain::bench
