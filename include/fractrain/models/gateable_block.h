#pragma once
// What DFQ needs from a block to run it under per-sample gate decisions (DESIGN.md 4.5), whatever the block's
// architecture: its residual branch and shortcut at a given precision, how the two combine, whether a sample
// may skip it, its quantized layers and its MACs. The ResNet BasicBlock and MobileNetV2's inverted-residual block
// implement it; models/gated_block.h runs any of them in `mixed` or `candidates` mode.
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <vector>

#include "fractrain/nn/quantized_layer.h"

namespace fractrain {

class GateableBlock {
 public:
  virtual ~GateableBlock() = default;

  // Applied, when set, to the input of every layer that runs at the sample's option (DFQ attaches the gate's
  // option gradient there).
  using InputHook = std::function<at::Tensor(const at::Tensor&)>;

  // The residual branch F(x). Layers that follow the option run at `precision` (per batch or per sample);
  // layers the block keeps at a fixed precision (see layer_precision) ignore it.
  virtual at::Tensor residual(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                              const InputHook& input_hook = nullptr) = 0;
  // The shortcut: x itself, a projection of x at `precision`, or an undefined tensor when the block has no
  // residual connection.
  virtual at::Tensor shortcut(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                              const InputHook& input_hook = nullptr) = 0;
  // The block's output from its residual branch and its shortcut (undefined when it has none).
  virtual at::Tensor combine(const at::Tensor& branch, const at::Tensor& shortcut) const = 0;
  // Blocks whose output is relu(scale * N(h) + shortcut), N a BatchNorm at the end of the residual branch, may run
  // N, the per-sample scale (a gated block's 1 - skip mask), the add and the ReLU as one fused op
  // (train.fused_batch_norm). fuses_combination() says whether this block does now; mixed execution then calls
  // residual_before_norm() (the branch up to N's input) and fused_combine() (scale undefined: 1) in place of
  // residual() and combine(). The defaults: no fusion.
  virtual bool fuses_combination() const { return false; }
  virtual at::Tensor residual_before_norm(const at::Tensor& x, const LayerPrecision& precision, uint64_t noise_step,
                                          const InputHook& input_hook = nullptr);
  virtual at::Tensor fused_combine(const at::Tensor& h, const at::Tensor& shortcut, const at::Tensor& scale);
  // True when the shortcut is the identity: a skipped sample then outputs its input. Blocks with a projection
  // or without a shortcut change the shape or carry no copy of the input, and are never skipped.
  virtual bool can_skip() const = 0;

  // Every quantized layer of the block, in execution order.
  virtual std::vector<std::shared_ptr<QuantizedLayer>> layers() const = 0;
  // What `layer` (one of layers()) executes when the block runs at `option`: the option itself, or the
  // layer's fixed precision (QuantizedLayer::fixed_precision).
  // Under masked execution (option.on_device()) a fixed layer gets its widths per sample on the device, 0 for the
  // samples that skip, so that they stay out of its ranges too.
  static LayerPrecision layer_precision(const QuantizedLayer& layer, const LayerPrecision& option);
  // Forward MACs of one sample whose input is height x width: every layer, and of those the layers at a
  // fixed precision (which cost the same whatever the option, and nothing when the sample skips).
  virtual int64_t macs_per_sample(int64_t height, int64_t width) const = 0;
  virtual int64_t fixed_precision_macs_per_sample(int64_t height, int64_t width) const { return 0; }
  // The precision of those fixed layers (the first one's; unused when there are none).
  Precision fixed_precision() const {
    for (const auto& l : layers())
      if (l->fixed_precision()) return *l->fixed_precision();
    return Precision::full();
  }

 protected:
  // x through the hook, when there is one.
  static at::Tensor hooked(const InputHook& hook, const at::Tensor& x) { return hook ? hook(x) : x; }
};

}  // namespace fractrain
