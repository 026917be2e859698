#pragma once
// Integer execution of a quantized layer (internal to QuantizedLayer; precision.execution = integer): the
// layer's shape as the integer kernels see it, and the backward node that runs the error backward and the
// weight gradient on integer codes (src/integer), or, for a gradient that has no 1..8-bit codes, on the
// simulated path (logged as a fallback); on CPUs without 8-bit dot products an 8-bit gradient sends the error
// backward alone there.
#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fractrain/integer/integer_conv.h"
#include "fractrain/nn/execution_log.h"
#include "fractrain/nn/layer_gradients.h"
#include "fractrain/quant/straight_through.h"
#include "quantized_layer_backward.h"

namespace fractrain {

// A layer as a 2-D convolution over channels-first input (QConv2d) or a 1x1 one over tokens with channels last
// (QLinear), and the shapes to give its results back in.
struct IntegerShape {
  integer::ConvGeometry geometry;
  integer::FeatureLayout layout = integer::FeatureLayout::ChannelsFirst;
  std::vector<int64_t> output_sizes;
};

// Why a pass with these operand widths cannot run on integer codes (empty: it can).
std::string integer_width_refusal(const std::vector<int>& widths, const char* operand);

// For DFQ's per-sample gradient widths: how many samples the backward splits off to the simulated path (those
// without 1..8-bit codes) while the others run on integers. 0 where it does not split: no sample is wide, all are,
// or more than a quarter are (the split would then cost more than it saves; integer_layer_backward.cpp).
int64_t samples_split_off(const std::vector<int>& gradient_widths);

struct IntegerLayerGraph {
  IntegerShape shape;
  integer::FeatureCodes input;  // the forward's codes of x, for the weight gradient
  int weight_bits = 0;
  std::optional<GradientQuantization> gradient;
  // What a pass that falls back needs: the input's quantization and the layer's float gradients.
  InputQuantization simulated_input;
  LayerGradients gradients;
  std::shared_ptr<ExecutionLog> log;
};

at::Tensor attach_integer_layer_backward(at::Tensor y, const at::Tensor& x, const at::Tensor& w,
                                         const at::Tensor& bias, IntegerLayerGraph graph);

}  // namespace fractrain
